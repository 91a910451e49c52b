-- GET one path at a fixed pace: each connection waits BENCH_DELAY_MS between requests.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "10")
function delay()
  return pause
end
