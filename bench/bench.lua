-- wrk script for scripts/bench.py. Everything is configured through environment variables:
--   BENCH_MODE        static (default) | feedback | mixed | jwt
--   BENCH_BODY        file with the POST body (static, jwt; mixed: the first order-sign body); unset = GET
--   BENCH_BODY_B      mixed: the second order-sign body
--   BENCH_SIGN_PATH   mixed: path of the order-sign endpoint
--   BENCH_FEEDBACK_PATH  feedback, mixed: path of the feedback endpoint
--   BENCH_CARD        feedback, mixed: card uuid the feedback answers
--   BENCH_RUN         feedback, mixed: run number (0-99), part of every outcomeTimestamp so each run inserts new rows
--   BENCH_TOKENS      jwt: file with one JWT per line; thread i uses lines i, i+n, i+2n, ... (n = BENCH_THREADS)
--   BENCH_THREADS     number of wrk threads (-t)
--   BENCH_STOP_AFTER  stop each thread after this many responses (0 = run for the whole duration); it then creates
--                     the file BENCH_DONE_FILE.<thread number> so that the caller can end wrk with SIGINT
-- done() prints one line "BENCH_COUNTS {json}" with the status classes seen and, for feedback, stored/duplicate counts.

local mode = os.getenv("BENCH_MODE") or "static"
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0") or 0
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local json_headers = {["Content-Type"] = "application/json"}

local function slurp(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local data = f:read("*a")
  f:close()
  return data
end

-- main state: remember the threads so done() can read their counters
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

-- thread state
tid = tid or 1
responses, s2xx, s3xx, s4xx, s5xx, fb_stored, fb_dup, sent_feedback = 0, 0, 0, 0, 0, 0, 0, 0
local counter = 0
local body_a, body_b, request_a, request_b, tokens, token_index
local card = os.getenv("BENCH_CARD") or "00000000-0000-4000-8000-000000000000"
local run = tonumber(os.getenv("BENCH_RUN") or "0") or 0
local feedback_path = os.getenv("BENCH_FEEDBACK_PATH")

local function feedback_request()
  counter = counter + 1
  sent_feedback = sent_feedback + 1
  -- a distinct outcomeTimestamp per request (run, thread, counter in the fraction) so every request inserts a row
  local body = string.format('{"feedback":[{"card":"%s","outcome":"overridden","overrideReason":{"reason":'
    .. '{"system":"http://example.org/override-reason","code":"benefit-outweighs-risk","display":"Benefit outweighs risk"},'
    .. '"userComment":"benchmark"},"outcomeTimestamp":"2026-10-15T10:00:00.%02d%03d%09dZ"}]}', card, run, tid, counter)
  return wrk.format("POST", feedback_path, json_headers, body)
end

if mode == "static" then
  local path = os.getenv("BENCH_BODY")
  if path and path ~= "" then
    wrk.method = "POST"
    wrk.body = slurp(path)
    wrk.headers["Content-Type"] = "application/json"
  end
elseif mode == "feedback" then
  request = feedback_request
elseif mode == "mixed" then
  body_a = slurp(os.getenv("BENCH_BODY"))
  body_b = slurp(os.getenv("BENCH_BODY_B"))
  local sign_path = os.getenv("BENCH_SIGN_PATH")
  request_a = wrk.format("POST", sign_path, json_headers, body_a)
  request_b = wrk.format("POST", sign_path, json_headers, body_b)
  local turn = 0
  request = function()
    turn = turn % 5 + 1  -- 2 typical, 2 no-bone-agent, 1 feedback
    if turn <= 2 then return request_a elseif turn <= 4 then return request_b else return feedback_request() end
  end
elseif mode == "jwt" then
  body_a = slurp(os.getenv("BENCH_BODY"))
  tokens = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if line ~= "" then table.insert(tokens, line) end
  end
  request = function()
    if token_index == nil then token_index = tid end
    local token = tokens[token_index] or tokens[1]  -- past the end: a replayed token, which the service refuses (401)
    token_index = token_index + nthreads
    return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body_a)
  end
end

function response(status, headers, body)
  responses = responses + 1
  if status < 300 then s2xx = s2xx + 1
  elseif status < 400 then s3xx = s3xx + 1
  elseif status < 500 then s4xx = s4xx + 1
  else s5xx = s5xx + 1 end
  if body and string.find(body, '"stored":1', 1, true) then fb_stored = fb_stored + 1 end
  if body and string.find(body, '"duplicates":1', 1, true) then fb_dup = fb_dup + 1 end
  if stop_after > 0 and responses == stop_after then
    -- wrk's main thread sleeps for the whole -d duration: tell scripts/bench.py, which then sends wrk SIGINT
    local marker = os.getenv("BENCH_DONE_FILE")
    if marker then local f = io.open(marker .. "." .. tid, "w"); if f then f:write("done\n"); f:close() end end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local names = {"responses", "s2xx", "s3xx", "s4xx", "s5xx", "fb_stored", "fb_dup", "sent_feedback"}
  local totals = {}
  for _, name in ipairs(names) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do totals[name] = totals[name] + (tonumber(thread:get(name)) or 0) end
  end
  local parts = {}
  for _, name in ipairs(names) do table.insert(parts, string.format('"%s": %d', name, totals[name])) end
  io.write("BENCH_COUNTS {" .. table.concat(parts, ", ") .. "}\n")
end
