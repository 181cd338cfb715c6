-- Example logic server entry point: GET /hhl answers which instance served it.
-- $hhl_instance is set by hhlctl's built-in templates (e.g. "socketserver-dev1").
ngx.header["Content-Type"] = "text/plain"
ngx.say("hhl ", ngx.var.hhl_instance or ngx.var.server_port, " ok")
