# Sourced by the transfer benchmarks: timing, and an rsync daemon's module.
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# write_rsyncd_conf CONF DIR: a module "bench" that writes into DIR.
write_rsyncd_conf() {
  cat >"$1" <<CONF
use chroot = no
uid = $(id -u)
gid = $(id -g)
[bench]
path = $2
read only = false
CONF
}
