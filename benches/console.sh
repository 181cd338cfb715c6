#!/usr/bin/env bash
# Benchmark: what the console's limits (issue 25: whole-request deadline, arriving
# connections, per-identity streams, requests and sessions, sign-in throttling) cost
# a normal console load. The release build of this tree ("after") and of BEFORE (by
# default `main`: run it on the branch before it is merged; afterwards name the
# commit before the merge) serve the same example side by side in one real-systemd
# container, as root, each on its own port, and are measured alternately in the same
# run:
#   sign-in      POST /login with the right password (argon2id dominates);
#   console load GET /, /console.js and /api/overview with a session (curl's
#                time_total of the three, summed).
# Medians, and after/before. RUNS console loads (default 201) and SIGNINS sign-ins
# (default 25: before the change one address got 30 sign-ins per 5 minutes, right
# or wrong) per build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-201}
signins=${SIGNINS:-25}
before=${BEFORE:-main}
before=$(git rev-parse --verify "$before^{commit}")
out=$PWD/target/bench-console
mkdir -p "$out"

# The old build: its sources in a worktree of their own, built into this target dir
# (dependencies are shared).
if [ ! -x "$out/hhlctl-$before" ]; then
  rm -rf "$out/src"
  git worktree add -f --detach "$out/src" "$before" >/dev/null
  CARGO_TARGET_DIR=$PWD/target cargo build --release -q --manifest-path "$out/src/Cargo.toml"
  cp target/release/hhlctl "$out/hhlctl-$before"
  git worktree remove --force "$out/src"
fi
. benches/lib.sh
bench_example_container # builds this tree (release) and installs it as /usr/bin/hhlctl
cp target/release/hhlctl "$out/hhlctl-after"

ct sh -c "printf 'bench-password\n' | hhlctl web passwd dev1 >/dev/null"
serve() { # NAME BINARY PORT
  ct sh -c "nohup $2 web serve --listen 127.0.0.1:$3 --passwd /etc/hhl/web.passwd --key /etc/hhl/web.key --public-url http://127.0.0.1:$3 >/tmp/$1.log 2>&1 &"
  ct sh -c "for i in \$(seq 200); do curl -s -o /dev/null http://127.0.0.1:$3/login && exit 0; sleep 0.05; done; cat /tmp/$1.log; exit 1"
}
serve before "$out/hhlctl-$before" 8081
serve after "$out/hhlctl-after" 8082

# One sign-in: its time, and the session cookie saved in /tmp/jar-PORT.
signin='curl -s -o /dev/null -c /tmp/jar-$1 -w "%{http_code} %{time_total}\n" -d "user=dev1&password=bench-password" http://127.0.0.1:$1/login'
get='-s -b /tmp/jar-$1 -o /dev/null -w "%{http_code} %{time_total}\n"'
load="curl $get http://127.0.0.1:\$1/ --next $get http://127.0.0.1:\$1/console.js --next $get http://127.0.0.1:\$1/api/overview"
ct sh -c "set -- 8081; $signin; set -- 8082; $signin" >/dev/null
ct sh -c "set -- 8081; $load; set -- 8082; $load" >/dev/null # first overview reads systemd

ct sh -c "
  for n in \$(seq $signins); do
    for p in 8081 8082; do set -- \$p; printf '%s ' \$p; $signin; done
  done" > "$out/signin"
ct sh -c "
  for n in \$(seq $runs); do
    for p in 8081 8082; do
      set -- \$p
      $load | awk -v p=\$p '{ if (\$1 != 200) bad = \$1; t += \$2 } END { print p, (bad ? bad : 200), t }'
    done
  done" > "$out/load"

median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR+1)/2)] * 1000 }'; }
report() { # FILE WHAT WANT
  local b a
  if awk -v want="$3" '$2 != want { bad = 1 } END { exit !bad }' "$1"; then
    echo "error: an answer other than $3 in $1:" >&2
    awk -v want="$3" '$2 != want' "$1" | head -5 >&2
    exit 1
  fi
  b=$(awk '$1 == 8081 { print $3 }' "$1" | median)
  a=$(awk '$1 == 8082 { print $3 }' "$1" | median)
  printf '%-13s before %8s ms   after %8s ms   after/before %s   (%s runs each, medians)\n' \
    "$2" "$b" "$a" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')" "$(awk '$1 == 8081' "$1" | wc -l)"
}
echo "before: $before ($(git log -1 --format=%s "$before" | cut -c1-60))"
report "$out/signin" sign-in 303
report "$out/load" "console load" 200
