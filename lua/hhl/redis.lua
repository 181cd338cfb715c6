-- hhl.redis: this instance's owner's Redis, authenticated.
--
--   local redis = require "hhl.redis"
--   local red, err = redis.connect()          -- a cosocket client, AUTH done
--   if not red then ngx.log(ngx.ERR, err) return end
--   red:call("SET", "player:42", "lobby")
--   local v, err = red:call("GET", "player:42")
--   red:keepalive()                            -- or red:close()
--
-- Each owner's Redis needs the owner's secret: hhlctl makes it, keeps it in
-- <state_dir>/redis/<owner>.secret (root:<instance user> 0640) and names the file
-- and the port in nginx.conf (`env HHL_REDIS_SECRET=...; env HHL_REDIS_PORT=...;`).
-- With lua-resty-redis: `red:auth(redis.secret())` after `red:connect("127.0.0.1", redis.port())`.
-- Other owners' Redis refuse this secret (WRONGPASS), and SHUTDOWN, CONFIG, ACL,
-- MONITOR, REPLICAOF, DEBUG, MODULE, FLUSHALL are refused to everyone (NOPERM).

local M = {}

local cached

function M.secret()
    if cached then return cached end
    local path = os.getenv("HHL_REDIS_SECRET")
    if not path then return nil, "no Redis for this instance's owner (HHL_REDIS_SECRET unset)" end
    local f, err = io.open(path, "r")
    if not f then return nil, "reading the Redis secret: " .. tostring(err) end
    local s = f:read("*l")
    f:close()
    cached = s
    return s
end

function M.port()
    return tonumber(os.getenv("HHL_REDIS_PORT"))
end

local Client = {}
Client.__index = Client

local function encode(args)
    local out = { "*", #args, "\r\n" }
    for _, a in ipairs(args) do
        a = tostring(a)
        out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return table.concat(out)
end

local function reply(sock)
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    local kind, rest = line:sub(1, 1), line:sub(2)
    if kind == "+" then return rest end
    if kind == "-" then return false, rest end
    if kind == ":" then return tonumber(rest) end
    if kind == "$" then
        local n = tonumber(rest)
        if n < 0 then return ngx.null end
        local data, e = sock:receive(n + 2)
        if not data then return nil, e end
        return data:sub(1, n)
    end
    if kind == "*" then
        local n = tonumber(rest)
        if n < 0 then return ngx.null end
        local t = {}
        for i = 1, n do
            local v, e = reply(sock)
            if v == nil then return nil, e end
            t[i] = v
        end
        return t
    end
    return nil, "bad reply: " .. line
end

-- One command; returns the reply, or nil/false and the error (`false, "NOPERM ..."`
-- for a Redis error reply, `nil, "timeout"` for a socket error).
function Client:call(...)
    local ok, err = self.sock:send(encode({ ... }))
    if not ok then return nil, err end
    return reply(self.sock)
end

function Client:keepalive()
    return self.sock:setkeepalive(10000, 32)
end

function Client:close()
    return self.sock:close()
end

-- Connect to `port` (default: the owner's) and authenticate with `secret` (default: the owner's).
function M.connect(port, secret)
    port = port or M.port()
    if not port then return nil, "no Redis for this instance's owner (HHL_REDIS_PORT unset)" end
    local s, err = secret, nil
    if not s then
        s, err = M.secret()
        if not s then return nil, err end
    end
    local sock = ngx.socket.tcp()
    sock:settimeouts(1000, 1000, 1000)
    local ok, e = sock:connect("127.0.0.1", port)
    if not ok then return nil, "connecting to Redis: " .. tostring(e) end
    local c = setmetatable({ sock = sock }, Client)
    if sock:getreusedtimes() == 0 then
        local r, aerr = c:call("AUTH", s)
        if not r then
            sock:close()
            return nil, "Redis AUTH: " .. tostring(aerr)
        end
    end
    return c
end

return M
