-- GET one path (given on the command line); wrk sends the same bytes every time.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
