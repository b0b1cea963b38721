-- wrk script for bench/consent.py: each request exchanges the next code of the file named
-- first after `--` (one form body per line); the second argument is the Authorization header.
-- done() prints one JSON line: answers 200, answers in all, seconds, and whether the codes
-- ran out before the run ended (then the figure would count refusals: give more codes).
-- wrk, not a Python client, because the load generator shares the server's two cores: aiohttp
-- spent 0.36 ms of CPU per request against a trivial server, wrk 0.05 ms.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bodies, sent, answered, ok, ran_out = {}, 0, 0, 0, 0
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = args[2] }
end

function request()
  sent = sent + 1
  if sent > #bodies then
    ran_out = 1
  end
  -- Past the last code, a request without a body: refused at once, it changes nothing.
  return wrk.format("POST", "/oauth/token", headers, bodies[sent])
end

function response(status, _headers, _body)
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
  end
end

function done(summary, _latency, _requests)
  local total_ok, total_answered, ran_out_any = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_answered = total_answered + thread:get("answered")
    ran_out_any = math.max(ran_out_any, thread:get("ran_out"))
  end
  io.write(string.format('{"ok": %d, "answered": %d, "seconds": %.6f, "ran_out": %s}\n',
    total_ok, total_answered, summary.duration / 1e6, ran_out_any == 1 and "true" or "false"))
end
