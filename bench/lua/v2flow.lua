-- The IMDSv2 flow an SDK runs for credentials: PUT /latest/api/token, then GET the role
-- list and the role's credentials with that token; repeated. Counts every request.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local role = os.getenv("BENCH_ROLE") or "role"
local close = os.getenv("BENCH_CLOSE") == "1"
local token = nil
local step = 0
local put_headers = {["X-aws-ec2-metadata-token-ttl-seconds"] = "21600"}
if close then put_headers["Connection"] = "close" end
local put = wrk.format("PUT", "/latest/api/token", put_headers)
local list_path = "/latest/meta-data/iam/security-credentials/"
local creds_path = list_path .. role

function request()
  if token == nil then return put end
  step = step + 1
  local s = step % 3
  if s == 0 then return put end
  local headers = {["X-aws-ec2-metadata-token"] = token}
  if close then headers["Connection"] = "close" end
  return wrk.format("GET", s == 1 and list_path or creds_path, headers)
end

function response(status, headers, body)
  if status == 200 and #body == 56 and body:sub(1, 4) == "AQAA" then token = body end
end
