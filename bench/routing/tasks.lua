-- wrk script of `make bench-routing` (scripts/bench-routing.sh): agent tasks with sticky routing.
--
-- Task ids are "<prefix><n>" for n in [0, BR_TASKS). Thread i of BR_THREADS owns a disjoint
-- slice of that space, so every request of a task goes through one thread and the thread can
-- check that all of them came back from the same release. The backend (a HAProxy answering
-- itself, bench/routing/backend.cfg) echoes the task id and names its release in the body:
--   {"release":"<release folder>","task":"<task id>"}
-- so response() knows which task a response belongs to and which backend really answered.
--
-- Settings come from the environment (os.getenv works in every Lua state of wrk):
--   BR_TASKS    size of the task space (100000)
--   BR_THREADS  wrk's -t (to cut the space into slices)
--   BR_PREFIX   task id prefix ("t")
--   BR_PATH     request path ("/bench/v1/answer")
--   BR_MODE     check: parse every response; fast: no response() at all (peak throughput)
--   BR_PASSES   0: cycle through the slice until wrk's -d ends; N > 0: visit every task of
--               the slice N times (in N rounds), then stop the thread once every task has an
--               answer and write BR_DONE.<thread> (the runner then ends wrk with SIGINT)
--   BR_DELAY_MS 0: each connection sends its next request as soon as the last one is answered;
--               D > 0: it waits D ms first (a paced load: the same offered load for every
--               target, below saturation; the wait is not part of the latency)
--   BR_SPAN     cycling runs (BR_PASSES 0) use only the first BR_SPAN tasks of each slice
--               (the ones a first pass that ran out of time did assign); default: all
--   BR_OFFSET   where in its slice each thread starts (cycling runs start at different tasks)
--   BR_HEADER   the response header that names the release ("x-airlock-release"), or "none"
--               to check only the body (direct to a backend)
--   BR_OUT      file for the results (key=value lines)
--   BR_MAP      optional file for "task release" lines, one per task answered
--   BR_HIST     optional file for the latency histogram: "<microseconds> <count>" lines, every
--               distinct latency wrk recorded (so runs can be pooled: check.py)
--   BR_DONE     marker path prefix (BR_PASSES > 0)

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

-- Setup and done run in their own Lua state.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- Thread state (each thread's own Lua state).
local lo, n, cycle, pos, passes, quota, answered, seen_count = 0, 0, 0, 0, 0, 0, 0, 0
local prefix, path, header, pause
local stopped = false
seen = {}        -- task id -> release that answered it (copied out by done())
violations = 0   -- a response of a task from another release than its earlier ones
mismatches = 0   -- the header names another release than the one that answered (body)
bad = 0          -- responses that are not 200 or carry no task/release
requests_built = 0
tasks_seen = 0

function init(args)
  local total = tonumber(env("BR_TASKS", "100000"))
  local nthreads = tonumber(env("BR_THREADS", "1"))
  local slice = math.floor(total / nthreads)
  lo = tid * slice
  n = (tid == nthreads - 1) and (total - lo) or slice
  prefix = env("BR_PREFIX", "t")
  path = env("BR_PATH", "/bench/v1/answer")
  header = string.lower(env("BR_HEADER", "x-airlock-release"))
  if header == "none" then header = "" end
  passes = tonumber(env("BR_PASSES", "0"))
  quota = passes * n
  cycle = n
  local span = tonumber(env("BR_SPAN", "0"))
  if passes == 0 and span > 0 and span < n then cycle = span end
  pos = tonumber(env("BR_OFFSET", "0")) % cycle
  -- wrk calls request() of its first thread once before the run, to check the request, and
  -- never sends that one: start a task earlier so that no task is skipped.
  if tid == 0 then pos = pos - 1 end
  if env("BR_MODE", "check") == "fast" then response = nil end
  pause = tonumber(env("BR_DELAY_MS", "0"))
  if pause <= 0 then delay = nil end
end

function delay()
  return pause
end

function request()
  local task = prefix .. (lo + (pos % cycle))
  pos = pos + 1
  requests_built = requests_built + 1
  return wrk.format(nil, path, { ["X-Task-Id"] = task })
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local release = string.match(body, '"release":"([^"]*)"')
  local task = string.match(body, '"task":"([^"]*)"')
  if release == nil or task == nil then
    bad = bad + 1
    return
  end
  if header ~= "" then
    local named = nil
    for k, v in pairs(headers) do
      if string.lower(k) == header then named = v end
    end
    if named ~= release then mismatches = mismatches + 1 end
  end
  local before = seen[task]
  if before == nil then
    seen[task] = release
    seen_count = seen_count + 1
    tasks_seen = seen_count
  elseif before ~= release then
    violations = violations + 1
  end
  answered = answered + 1
  if quota > 0 and not stopped and answered >= quota and seen_count >= n then
    stopped = true
    local f = io.open(env("BR_DONE", "/tmp/br-done") .. "." .. tid, "w")
    if f then f:write("done\n"); f:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(env("BR_OUT", "/dev/stdout"), "w"))
  local map = nil
  if env("BR_MAP", "") ~= "" then map = assert(io.open(env("BR_MAP", ""), "w")) end
  local per_release = {}
  local v, m, b, ts = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    v = v + (t:get("violations") or 0)
    m = m + (t:get("mismatches") or 0)
    b = b + (t:get("bad") or 0)
    ts = ts + (t:get("tasks_seen") or 0)
    if map ~= nil or env("BR_MODE", "check") == "check" then
      local s = t:get("seen") or {}
      for task, release in pairs(s) do
        per_release[release] = (per_release[release] or 0) + 1
        if map ~= nil then map:write(task, " ", release, "\n") end
      end
    end
  end
  if map ~= nil then map:close() end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  out:write(string.format("requests=%d\n", summary.requests))
  out:write(string.format("seconds=%.3f\n", seconds))
  out:write(string.format("rps=%.1f\n", summary.requests / seconds))
  out:write(string.format("p50_us=%d\n", latency:percentile(50)))
  out:write(string.format("p90_us=%d\n", latency:percentile(90)))
  out:write(string.format("p99_us=%d\n", latency:percentile(99)))
  out:write(string.format("p999_us=%d\n", latency:percentile(99.9)))
  out:write(string.format("max_us=%d\n", latency.max))
  out:write(string.format("mean_us=%.1f\n", latency.mean))
  out:write(string.format("errors=%d\n", e.connect + e.read + e.write + e.status + e.timeout))
  out:write(string.format("errors_detail=connect %d read %d write %d status %d timeout %d\n", e.connect, e.read, e.write, e.status, e.timeout))
  out:write(string.format("bad=%d\n", b))
  out:write(string.format("violations=%d\n", v))
  out:write(string.format("mismatches=%d\n", m))
  out:write(string.format("tasks_seen=%d\n", ts))
  for release, count in pairs(per_release) do
    out:write(string.format("tasks.%s=%d\n", release, count))
  end
  out:close()
  if env("BR_HIST", "") ~= "" then
    -- wrk's latency statistics: #latency distinct values, latency(i) the i-th (µs) and its count.
    local h = assert(io.open(env("BR_HIST", ""), "w"))
    for i = 1, #latency do
      local us, count = latency(i)
      h:write(string.format("%d %d\n", us, count))
    end
    h:close()
  end
end
