-- OpenResty's module name for Debian's lua-resty-websocket (package lua-nginx-websocket).
-- hhlctl puts this directory after nginx's default path: on OpenResty the real
-- resty.websocket.server is found first and this file is never read.
return require "nginx.websocket.server"
