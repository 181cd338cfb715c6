-- The example game server's entry point (every request of socketserver and dtserver).
--   GET /hhl      which instance answered (health checks and tests use it)
--   GET /stats    sessions open on this instance, as JSON
--   /ws           a WebSocket game session: see game/session.lua
local uri = ngx.var.uri

if uri == "/ws" then
    return require("game.session").run()
elseif uri == "/hhl" then
    ngx.header["Content-Type"] = "text/plain"
    ngx.say("hhl ", ngx.var.hhl_instance or ngx.var.server_port, " ok")
elseif uri == "/stats" then
    ngx.header["Content-Type"] = "application/json"
    ngx.say(require("cjson").encode(require("game.session").stats()))
else
    -- A wrong URL on a development server is worth a line in the developer's log.
    require("hhl.log").info("not found", { uri = uri })
    ngx.exit(ngx.HTTP_NOT_FOUND)
end
