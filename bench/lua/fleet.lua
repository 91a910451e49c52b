-- GET one path, each wrk thread on its own port: BENCH_PORTS lists the ports (comma
-- separated), handed out to the threads in turn. Run with as many threads as
-- connections, so that each connection is one client of one instance (a fleet member
-- recognised by the listener it came in on).
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local ports = {}
for p in string.gmatch(os.getenv("BENCH_PORTS") or "", "[^,]+") do
  ports[#ports + 1] = p
end
local given = 0

function setup(thread)
  if #ports > 0 then
    given = given + 1
    thread.addr = wrk.lookup("127.0.0.1", ports[((given - 1) % #ports) + 1])[1]
  end
end
