-- Rooms whose state lives in the developer's own Redis (hhl.yaml gives each developer
-- one; the template passes its port as $hhl_redis_port). Keys:
--   hhl:room:<room>:players   set of player names
--   hhl:room:<room>:state     hash of game state
local redis = require "resty.redis"
-- The owner's Redis wants the owner's secret (hhlctl makes it; nginx.conf names its file).
local hhl_redis = require "hhl.redis"

local M = {}

-- Connect by address: nginx has no resolver configured, so "localhost" would fail.
local HOST = "127.0.0.1"

local function connect()
    local r = redis:new()
    r:set_timeout(2000)
    local port = tonumber(ngx.var.hhl_redis_port)
    if not port then
        return nil, "no Redis for this instance ($hhl_redis_port is not set)"
    end
    local ok, err = r:connect(HOST, port)
    if not ok then
        return nil, "redis " .. HOST .. ":" .. port .. ": " .. err
    end
    -- A connection from the pool is already authenticated: AUTH only new ones.
    if r:get_reused_times() == 0 then
        local secret, serr = hhl_redis.secret()
        if not secret then
            r:close()
            return nil, serr
        end
        ok, err = r:auth(secret)
        if not ok then
            r:close()
            return nil, "redis AUTH: " .. tostring(err)
        end
    end
    return r
end

-- Run f(r) on a pooled connection; the connection goes back to the pool after.
local function with_redis(f)
    local r, err = connect()
    if not r then
        return nil, err
    end
    local res, ferr = f(r)
    if res == nil then
        r:close()
        return nil, ferr
    end
    r:set_keepalive(30000, 256)
    return res
end

local function key(room, what)
    return "hhl:room:" .. room .. ":" .. what
end

-- A hash as a Lua table ({k1, v1, k2, v2} from HGETALL).
local function hash(list)
    local t = {}
    for i = 1, #list, 2 do
        t[list[i]] = list[i + 1]
    end
    return t
end

function M.join(room, player)
    return with_redis(function(r)
        local ok, err = r:sadd(key(room, "players"), player)
        if not ok then
            return nil, err
        end
        local players, perr = r:smembers(key(room, "players"))
        if not players then
            return nil, perr
        end
        table.sort(players)
        return players
    end)
end

function M.leave(room, player)
    return with_redis(function(r)
        return r:srem(key(room, "players"), player)
    end)
end

function M.set(room, k, v)
    return with_redis(function(r)
        local ok, err = r:hset(key(room, "state"), k, v)
        if not ok then
            return nil, err
        end
        local all, aerr = r:hgetall(key(room, "state"))
        if not all then
            return nil, aerr
        end
        return hash(all)
    end)
end

function M.state(room)
    return with_redis(function(r)
        local all, err = r:hgetall(key(room, "state"))
        if not all then
            return nil, err
        end
        return hash(all)
    end)
end

return M
