-- retell.lua - wrk script: each thread sends its own share of the pre-signed webhooks in
-- order, so every request is a distinct event (no duplicates unless the file runs out).
local requests = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == (tid - 1) then
      local sig, body = line:match("^([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/webhooks/retell",
        { ["Content-Type"] = "application/json", ["x-retell-signature"] = sig }, body)
    end
    i = i + 1
  end
  idx = 0
end

function request()
  idx = idx + 1
  if idx > #requests then idx = 1 end
  return requests[idx]
end
