-- wrk script: send prepared signed requests, each once.
-- Usage: wrk ... URL -s _signed.lua -- DIR, where DIR/signed.<n> holds thread n's
-- Authorization values, one a line (benchmarks/_forwarding.py writes them).
-- A thread that runs out starts again from its first value; the broker then refuses
-- the reused nonces, and wrk counts those answers as errors.

local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  values = {}
  for line in io.lines(args[1] .. "/signed." .. id) do
    values[#values + 1] = line
  end
  head = "GET " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port ..
    "\r\nAuthorization: "
  next_value = 0
end

function request()
  next_value = next_value + 1
  if next_value > #values then
    next_value = 1
  end
  return head .. values[next_value] .. "\r\n\r\n"
end
