-- Sent in every session's hello: which deploy of the code a session runs.
return "1"
