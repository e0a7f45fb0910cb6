-- wrk script of the benchmark harness.
-- Arguments after "--": a file with one Authorization header value per line,
-- where "-" means a request without the header. Each thread cycles through the
-- prepared requests, counts response statuses, and done() prints one line
-- "BENCH_RESULT {json}" with the summary, latency percentiles in microseconds
-- and the merged status counts.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  prepared = {}
  for line in io.lines(args[1]) do
    if line == "-" then
      prepared[#prepared + 1] = wrk.format("GET", wrk.path)
    elseif line ~= "" then
      prepared[#prepared + 1] = wrk.format("GET", wrk.path, { Authorization = line })
    end
  end
  position = 0
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, '
      .. '"statuses": {%s}}\n',
    summary.requests, summary.duration,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    table.concat(parts, ", ")))
end
