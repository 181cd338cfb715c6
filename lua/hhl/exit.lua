-- hhl.exit: know, and be woken, when this nginx worker starts to exit (a reload after
-- a deploy, a restart or a stop). Shared by hhl.websocket and the resty.websocket.server
-- hhlctl ships, so that sessions end with close 1001 instead of holding the old worker
-- until worker_shutdown_timeout.
--
-- Each worker holds one timer that nginx fires early ("premature") the moment the
-- worker starts to exit; it wakes every light thread waiting here. Waiting costs
-- nothing until then: a semaphore, not a polling loop.

local semaphore = require "ngx.semaphore"

local M = {}

local exiting = false
local exit_sema
local YEAR = 365 * 24 * 3600

local function on_timer(premature)
    if not premature then
        -- A year passed: keep watching.
        ngx.timer.at(YEAR, on_timer)
        return
    end
    exiting = true
    -- count() is minus the number of waiting threads.
    local waiting = -exit_sema:count()
    if waiting > 0 then
        exit_sema:post(waiting)
    end
    -- The post is an event nginx handles after its next wait for I/O; this timer
    -- (zero delay is still allowed while exiting) makes that wait return at once,
    -- instead of at the next socket timeout.
    ngx.timer.at(0, function() end)
end

local function arm()
    if exit_sema then
        return
    end
    exit_sema = semaphore.new()
    local ok, err = ngx.timer.at(YEAR, on_timer)
    if not ok then
        -- "process exiting": no new timers in a worker that is shutting down.
        exiting = true
        ngx.log(ngx.INFO, "hhl.exit: ", err)
    end
end

--- True once this worker has started to shut down (reload or stop).
function M.exiting()
    return exiting or ngx.worker.exiting()
end

--- Block the calling light thread until this worker starts to shut down.
function M.wait()
    arm()
    while not M.exiting() do
        exit_sema:wait(3600)
    end
    return "exit"
end

return M
