-- wrk script for workerbench: request settings from the environment, results as one JSON line.
--
-- wrk loads this file into every thread's Lua state and into the state that runs
-- setup() and done(), so the top-level code below runs once per state. It only sets
-- wrk.method / wrk.body / wrk.headers; wrk's own init() then formats the request once
-- per thread with wrk.format(), which adds Host and sets Content-Length to #wrk.body.
--
--   WB_METHOD     request method (default GET)
--   WB_BODY_FILE  path of a file whose bytes are the request body (empty or unset: no body)
--   WB_CLOSE      "1": send "Connection: close", so every request opens a new connection
--   WB_HEADERS    extra header fields, one "Name: value" per line (a user's scenario); they override the
--                 Content-Type set for a body
--
-- response() is deliberately not defined: when it is nil wrk skips collecting headers
-- and bodies, which is what lets it reach its full request rate. Status errors
-- (status > 399) are counted by wrk either way.

local method = os.getenv("WB_METHOD")
if method == nil or method == "" then
   method = "GET"
end
wrk.method = method

local body_file = os.getenv("WB_BODY_FILE")
if body_file ~= nil and body_file ~= "" then
   local f, err = io.open(body_file, "rb")
   if f == nil then
      error("WB_BODY_FILE: cannot open " .. body_file .. ": " .. tostring(err))
   end
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Content-Type"] = "application/octet-stream"
end

local extra = os.getenv("WB_HEADERS")
if extra ~= nil and extra ~= "" then
   for line in extra:gmatch("[^\n]+") do
      local name, value = line:match("^([^:]+):%s*(.*)$")
      if name ~= nil then
         for key in pairs(wrk.headers) do  -- one field per name, whatever its case
            if key:lower() == name:lower() then
               wrk.headers[key] = nil
            end
         end
         wrk.headers[name] = value
      end
   end
end

if os.getenv("WB_CLOSE") == "1" then
   wrk.headers["Connection"] = "close"
end

-- A JSON number, or null for NaN and infinities (which JSON cannot carry).
local function num(x, fmt)
   if x == nil or x ~= x or x == math.huge or x == -math.huge then
      return "null"
   end
   return string.format(fmt or "%.0f", x)
end

-- The percentile spectrum, at scripts/records/distribution.py's levels: each halving of the distance to 100%
-- gets five points, until a point would be less than one request away; then the maximum. wrk hands a
-- script percentiles, not its histogram, and each percentile() is one pass over its buckets, so ~100
-- points cost milliseconds. wrk's percentile(100) is 0 (its rank is count + 1), hence max.
-- The named percentiles (p50 ... p99.999) are points too. Order does not matter to the reader.
local function spectrum(latency, count)
   local levels = {}
   local remaining = 100.0
   while remaining * count / 100.0 >= 1.0 and #levels < 400 do
      local base = 100.0 - remaining
      for i = 0, 4 do
         levels[#levels + 1] = base + remaining / 2.0 * i / 5
      end
      remaining = remaining / 2.0
   end
   for _, level in ipairs({50, 75, 90, 95, 99, 99.9, 99.99, 99.999}) do
      if (100.0 - level) * count / 100.0 >= 1.0 then
         levels[#levels + 1] = level
      end
   end
   local points = {}
   for _, level in ipairs(levels) do
      points[#points + 1] = "[" .. string.format("%.9g", level) .. "," .. num(latency:percentile(level)) .. "]"
   end
   points[#points + 1] = "[100," .. num(latency.max) .. "]"
   return "[" .. table.concat(points, ",") .. "]"
end

function done(summary, latency, requests)
   local e = summary.errors
   local parts = {
      '"requests":' .. num(summary.requests),
      '"duration_us":' .. num(summary.duration),
      '"bytes":' .. num(summary.bytes),
      '"errors":{' .. table.concat({
         '"connect":' .. num(e.connect),
         '"read":' .. num(e.read),
         '"write":' .. num(e.write),
         '"status":' .. num(e.status),
         '"timeout":' .. num(e.timeout),
      }, ",") .. "}",
   }
   local lat = {}
   if summary.requests > 0 then
      lat = {
         '"p50":' .. num(latency:percentile(50.0)),
         '"p75":' .. num(latency:percentile(75.0)),
         '"p90":' .. num(latency:percentile(90.0)),
         '"p99":' .. num(latency:percentile(99.0)),
         '"p999":' .. num(latency:percentile(99.9)),
         '"mean":' .. num(latency.mean, "%.3f"),
         '"stdev":' .. num(latency.stdev, "%.3f"),
         '"max":' .. num(latency.max),
         '"min":' .. num(latency.min),
         '"spectrum":' .. spectrum(latency, summary.requests),
      }
   end
   parts[#parts + 1] = '"latency_us":{' .. table.concat(lat, ",") .. "}"
   io.write("WORKERBENCH_WRK_JSON {" .. table.concat(parts, ",") .. "}\n")
   io.flush()
end
