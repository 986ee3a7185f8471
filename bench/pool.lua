-- wrk script: sends each record of a pool written by bench/pool.py (one
-- complete signed webhook request, all of one length) at most once, so
-- every request carries new, correctly signed events. Run with one wrk
-- thread (-t1): the pool is loaded in init(), before wrk starts its clock.
--
--   WRK_RESULT=out.json wrk -t1 -c64 -d10s -s bench/pool.lua URL -- POOL RECORD_LENGTH [cycle]
--
-- If the pool runs out the thread stops and the result says so
-- ("exhausted": true); such a run is not a valid measurement (bench/run.sh
-- then repeats it with a larger pool). With "cycle" it starts over
-- instead: only for a server that keeps nothing (the bare-hyper ceiling),
-- for which a repeated body costs what a new one does, and whose rate
-- would need a pool larger than LuaJIT can hold. done() writes the
-- summary as JSON to $WRK_RESULT.

local requests = {}
local count = 0
local next_index = 1
local cycle = false
exhausted = false
used = 0

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   local length = tonumber(args[2])
   cycle = args[3] == "cycle"
   while true do
      local record = f:read(length)
      if not record then break end
      assert(#record == length, "pool size is not a multiple of the record length")
      count = count + 1
      requests[count] = record
   end
   f:close()
end

function request()
   local i = next_index
   if i > count and cycle then
      i = 1
   elseif i > count then
      exhausted = true
      wrk.thread:stop()
      return requests[count]
   end
   next_index = i + 1
   used = i
   return requests[i]
end

local function json_number(x)
   return string.format("%.3f", x)
end

function done(summary, latency, requests_stats)
   local any_exhausted = false
   local total_used = 0
   for _, t in ipairs(threads) do
      if t:get("exhausted") then any_exhausted = true end
      total_used = total_used + (t:get("used") or 0)
   end
   local e = summary.errors
   local parts = {}
   table.insert(parts, string.format('"requests":%d', summary.requests))
   table.insert(parts, string.format('"duration_us":%d', summary.duration))
   table.insert(parts, string.format('"bytes":%d', summary.bytes))
   table.insert(parts, string.format(
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}',
      e.connect, e.read, e.write, e.timeout, e.status))
   table.insert(parts, string.format('"pool_used":%d', total_used))
   table.insert(parts, '"exhausted":' .. tostring(any_exhausted))
   table.insert(parts, string.format(
      '"latency_us":{"min":%s,"mean":%s,"max":%s,"stdev":%s}',
      json_number(latency.min), json_number(latency.mean),
      json_number(latency.max), json_number(latency.stdev)))
   local ps = {}
   local quantiles = {1, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 95,
                      97.5, 99, 99.5, 99.9, 99.99}
   for _, q in ipairs(quantiles) do
      table.insert(ps, string.format('["%s",%d]', tostring(q), latency:percentile(q)))
   end
   table.insert(parts, '"percentiles_us":[' .. table.concat(ps, ",") .. ']')
   local out = "{" .. table.concat(parts, ",") .. "}\n"
   local path = os.getenv("WRK_RESULT")
   if path then
      local f = assert(io.open(path, "w"))
      f:write(out)
      f:close()
   else
      io.write(out)
   end
end
