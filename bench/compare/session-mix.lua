-- The shared workload's wrk script (/work/shared/workload/session.lua), mirrored for mixed loads:
-- the same requests, plus a count of acknowledged writes, which the count check needs once part of
-- the requests are reads. run.mjs uses it only with --read-pct above 0; write-only runs use the
-- shared script itself.
-- usage: wrk ... -s session-mix.lua http://127.0.0.1:PORT -- COOKIE_FILE [PAYLOAD] [READ_PCT]
-- env WRK_PORTS="8081,8082": thread i connects to 127.0.0.1:<port i mod n>.
local cookies = {}
local counter_path, read_pct

local ports = {}
for p in string.gmatch(os.getenv("WRK_PORTS") or "", "%d+") do ports[#ports + 1] = p end
local nthread = 0
local threads = {}

function setup(thread)
  if #ports > 0 then
    local port = ports[(nthread % #ports) + 1]
    thread.addr = wrk.lookup("127.0.0.1", port)[1]
    nthread = nthread + 1
  end
  threads[#threads + 1] = thread
end

function init(args)
  local file = args[1] or "cookies.txt"
  for line in io.lines(file) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  if #cookies == 0 then error("no cookies in " .. file) end
  counter_path = "/app/counter?payload=" .. (args[2] or "1024")
  read_pct = tonumber(args[3] or "0")
  writes = 0
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  local path = counter_path
  if read_pct > 0 and math.random(100) <= read_pct then path = "/app/read" end
  return wrk.format("GET", path, { ["Cookie"] = cookies[math.random(#cookies)] })
end

-- A counter response ("count=<n> node=<route> id=<id>") acknowledges an increment; a read's has no id.
function response(status, headers, body)
  if status == 200 and string.find(body, " id=", 1, true) then writes = writes + 1 end
end

function done(summary, latency, requests)
  local s = summary
  local e = s.errors
  local acked = 0
  for _, t in ipairs(threads) do acked = acked + (t:get("writes") or 0) end
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d writes=%d\n",
    s.requests, s.duration / 1e6, s.requests / (s.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect, e.read, e.write, e.status, e.timeout, acked))
end
