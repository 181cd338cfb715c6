-- OpenResty's module name for Debian's lua-resty-redis (package lua-nginx-redis).
-- hhlctl puts this directory after nginx's default path: on OpenResty the real
-- resty.redis is found first and this file is never read.
return require "nginx.redis"
