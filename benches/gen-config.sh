#!/usr/bin/env bash
# Print an hhl.yaml with N developers (default 100) x 3 servers + Redis.
set -euo pipefail
n=${1:-100}
devs=$(seq -f 'dev%g' 1 "$n" | paste -sd, -)
server() { # name base-port shared
  echo "  $1:"
  echo "    template: builtin:$1"
  [ "$3" = shared ] && echo "    shared: true"
  echo "    values:"
  echo "      master: {port: $2, worker_processes: 1, worker_connections: 1024, error_log_level: info, lua_code_cache: 'off', server_name: localhost}"
  if [ "$3" != shared ]; then for i in $(seq 1 "$n"); do echo "      dev$i: {port: $(( $2 + i ))}"; done; fi
}
echo "developers: [$devs]"
echo "nginx: {flavor: debian}"
echo "servers:"
server socketserver 10000 own
server dtserver 20000 own
server httpserver 30000 own
echo "redis:"
echo "  template: builtin:redis"
echo "  values:"
echo "    master: {port: 40000, bind: 127.0.0.1, loglevel: notice, databases: 16, appendonly: 'no'}"
for i in $(seq 1 "$n"); do echo "    dev$i: {port: $(( 40000 + i ))}"; done
