# Source me from a benchmark: boot a real-systemd container with the release build
# installed (binary, units) and the shipped example applied.
bench_example_container() {
  cargo build --release -q
  . scripts/container.sh
  container_boot
  ct sh -c "cp $PWD/units/* /usr/lib/systemd/system/ && cp $PWD/target/release/hhlctl /usr/bin/hhlctl && systemctl daemon-reload"
  ct sh -c 'mkdir -p /etc/hhl && cat > /etc/hhl/hhl.yaml' < examples/hhl.yaml
  ct hhlctl apply > /dev/null
}
