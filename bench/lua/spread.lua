-- GET a random path from BENCH_PATHS, with a random token from BENCH_TOKENS (if set):
-- spreads the load over many leaves and many live IMDSv2 tokens.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local function lines(name)
  local out = {}
  if name == nil or name == "" then return out end
  for line in io.lines(name) do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end
local paths = lines(os.getenv("BENCH_PATHS"))
local tokens = lines(os.getenv("BENCH_TOKENS"))
local close = os.getenv("BENCH_CLOSE") == "1"
local requests = {}

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  -- Pre-format a bounded set of requests so the generator does little work per request.
  local n = math.max(#paths, #tokens, 1)
  if n > 20000 then n = 20000 end
  for i = 1, n do
    local headers = {}
    if #tokens > 0 then
      headers["X-aws-ec2-metadata-token"] = tokens[((i - 1) % #tokens) + 1]
    end
    if close then headers["Connection"] = "close" end
    local path = paths[math.random(#paths)]
    requests[i] = wrk.format("GET", path, headers)
  end
end

function request()
  return requests[math.random(#requests)]
end
