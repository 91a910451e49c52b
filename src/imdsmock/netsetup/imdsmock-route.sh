#!/bin/sh
# imdsmock-route.sh - send this container's 169.254.169.254:80 to the imdsmock service.
#
# The POSIX-shell twin of `imdsmock route container` / `imdsmock route sidecar`, for
# application images without Python. Needs only sh (dash, busybox), getent, iproute2 and
# iptables (or nft), and CAP_NET_ADMIN in the container (compose: cap_add: [NET_ADMIN]).
#
#   imdsmock-route.sh [--mock HOST[:PORT]] [--credentials-port P] [--timeout S]
#                     [--dry-run] -- CMD [ARG...]        # entrypoint: route, then exec CMD
#   imdsmock-route.sh --sidecar [--mock HOST[:PORT]] ...  # route, then idle until SIGTERM
#
# Environment (options win): IMDSMOCK_ROUTE_TO=HOST[:PORT] (else IMDSMOCK_HOST, the
# server's bind host, kept for older setups), IMDSMOCK_PORT (default 1338),
# IMDSMOCK_CREDENTIALS_PORT (also route 169.254.170.2:80), IMDSMOCK_TIMEOUT (default 30).
# An every-address value (0.0.0.0, ::) is a bind address, never a target: exit 2.
# Exit status 2 with one line on stderr for bad input, a missing tool or a name that never
# resolves. Rules live in the nat chain IMDSMOCK (or nft table inet imdsmock) only. A
# command that fails while they go in, or SIGTERM/SIGINT/SIGHUP then, removes our rules and
# the routes added and exits with one line: status 1, or 128 + the signal; CMD is not run.
set -eu

me=imdsmock-route
die() {
	echo "$me: error: $*" >&2
	exit 2
}

if [ -n "${IMDSMOCK_ROUTE_TO:-}" ]; then
	host=$IMDSMOCK_ROUTE_TO from=IMDSMOCK_ROUTE_TO
else
	host=${IMDSMOCK_HOST:-} from=IMDSMOCK_HOST
fi
port=${IMDSMOCK_PORT:-1338}
cport=${IMDSMOCK_CREDENTIALS_PORT:-}
timeout=${IMDSMOCK_TIMEOUT:-30}
sidecar=0
dry=0
while [ $# -gt 0 ]; do
	case $1 in
	--mock | --credentials-port | --timeout)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--mock) host=$2 from=--mock ;;
		--credentials-port) cport=$2 ;;
		--timeout) timeout=$2 ;;
		esac
		shift 2
		;;
	--mock=*) host=${1#*=} from=--mock && shift ;;
	--credentials-port=*) cport=${1#*=} && shift ;;
	--timeout=*) timeout=${1#*=} && shift ;;
	--sidecar) sidecar=1 && shift ;;
	--dry-run) dry=1 && shift ;;
	--) shift && break ;;
	-*) die "unknown option '$1'; expected --mock, --credentials-port, --timeout, --sidecar, --dry-run or --" ;;
	*) break ;;
	esac
done

case $host in
0.0.0.0 | 0.0.0.0:* | :: | '[::]' | '[::]':*)
	die "$from is '$host', the listen-on-every-address value, not an address to route to; name the mock instead, e.g. --mock imds:1338 or IMDSMOCK_ROUTE_TO=imds:1338"
	;;
*:*) port=${host##*:} && host=${host%:*} ;;
esac
[ -n "$host" ] || die "no mock given; set IMDSMOCK_ROUTE_TO=HOST[:PORT] or pass --mock HOST[:PORT]"
isport() {
	case $2 in
	'' | *[!0-9]*) die "$1 is '$2'; expected a port number 1..65535" ;;
	esac
	[ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1 is '$2'; expected a port number 1..65535"
}
isport "mock port" "$port"
[ -z "$cport" ] || isport "credentials port" "$cport"
case $timeout in
'' | *[!0-9]*) die "timeout is '$timeout'; expected whole seconds, e.g. 30" ;;
esac
[ $sidecar = 1 ] || [ $# -gt 0 ] || die "no command given; expected: -- CMD [ARG...] (or --sidecar)"

# Wait for the mock's name: in compose it appears in DNS only once the mock has started.
resolve() { getent ahostsv4 "$1" 2>/dev/null | { read -r a _ && echo "$a"; } || true; }
waited=0
addr=$(resolve "$host")
while [ -z "$addr" ]; do
	[ "$waited" -lt "$timeout" ] ||
		die "timed out after $timeout s waiting for the mock's name '$host' to resolve; is the mock service running on this network? (IMDSMOCK_TIMEOUT to wait longer)"
	sleep 1
	waited=$((waited + 1))
	addr=$(resolve "$host")
done

nl='
'
# Undo what install_rules added, say why in one line, exit with status $2 (default 1).
fail() {
	trap - TERM INT HUP
	remove_rules
	echo "$me: error: $1; removed our rules and the routes added" >&2
	exit "${2:-1}"
}

# Run a changing command (print it with --dry-run); on failure, fail with its last line.
run() {
	if [ $dry = 1 ]; then
		echo "$*"
		return 0
	fi
	if ! out=$("$@" 2>&1); then
		why=${out##*"$nl"}
		fail "command failed: $*: ${why:-failed}"
	fi
}

if command -v iptables >/dev/null 2>&1; then
	ipt=iptables
elif command -v iptables-nft >/dev/null 2>&1; then
	ipt=iptables-nft
elif command -v iptables-legacy >/dev/null 2>&1; then
	ipt=iptables-legacy
elif command -v nft >/dev/null 2>&1; then
	ipt=
else
	die "no firewall tool found; install iptables (Debian: apt-get install iptables; Alpine: apk add iptables)"
fi
command -v ip >/dev/null 2>&1 || die "ip not found; install iproute2"

# A container on an internal network has no default route: route the link-local address
# the way the mock is routed, so the OUTPUT DNAT below gets a chance to rewrite it.
added_routes=
route_like_mock() {
	ip route get "$1" >/dev/null 2>&1 && return 0
	set -- "$1" $(ip route get "$addr" 2>/dev/null | { read -r line && echo "$line"; })
	target=$1
	shift
	via= dev=
	while [ $# -gt 0 ]; do
		case $1 in
		via) via=$2 && shift ;;
		dev) dev=$2 && shift ;;
		esac
		shift
	done
	[ -n "$dev" ] || return 0
	added_routes="$added_routes $target/32"
	run ip route add "$target/32" ${via:+via "$via"} dev "$dev"
}

install_rules() {
	route_like_mock 169.254.169.254
	[ -z "$cport" ] || route_like_mock 169.254.170.2
	if [ -n "$ipt" ]; then
		if $ipt -w -t nat -S IMDSMOCK >/dev/null 2>&1; then
			run $ipt -w -t nat -F IMDSMOCK
		else
			run $ipt -w -t nat -N IMDSMOCK
		fi
		run $ipt -w -t nat -A IMDSMOCK -d 169.254.169.254/32 -p tcp -m tcp --dport 80 \
			-j DNAT --to-destination "$addr:$port"
		[ -z "$cport" ] || run $ipt -w -t nat -A IMDSMOCK -d 169.254.170.2/32 -p tcp -m tcp \
			--dport 80 -j DNAT --to-destination "$addr:$cport"
		$ipt -w -t nat -C OUTPUT -j IMDSMOCK >/dev/null 2>&1 ||
			run $ipt -w -t nat -I OUTPUT 1 -j IMDSMOCK
	else
		ecs=
		[ -z "$cport" ] || ecs="ip daddr 169.254.170.2 tcp dport 80 dnat ip to $addr:$cport"
		script="table inet imdsmock {}
delete table inet imdsmock
table inet imdsmock {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr 169.254.169.254 tcp dport 80 dnat ip to $addr:$port
    $ecs
  }
}"
		if [ $dry = 1 ]; then
			echo "nft -f - <<'EOF'" && echo "$script" && echo EOF
		elif ! out=$(echo "$script" | nft -f - 2>&1); then
			fail "command failed: nft -f -: ${out%%"$nl"*}"
		fi
	fi
}

remove_rules() {
	if [ -n "$ipt" ]; then
		while $ipt -w -t nat -D OUTPUT -j IMDSMOCK 2>/dev/null; do :; done
		$ipt -w -t nat -F IMDSMOCK 2>/dev/null || true
		$ipt -w -t nat -X IMDSMOCK 2>/dev/null || true
	else
		nft delete table inet imdsmock 2>/dev/null || true
	fi
	for r in $added_routes; do ip route del "$r" 2>/dev/null || true; done
}

trap 'fail "interrupted by SIGTERM" 143' TERM
trap 'fail "interrupted by SIGINT" 130' INT
trap 'fail "interrupted by SIGHUP" 129' HUP
install_rules
trap - TERM INT HUP
if [ $dry = 1 ]; then
	exit 0
fi
echo "$me: 169.254.169.254:80 -> $addr:$port${cport:+, 169.254.170.2:80 -> $addr:$cport}" >&2
if [ $sidecar = 0 ]; then
	exec "$@"
fi

# Sidecar: idle in the shared namespace; on SIGTERM/SIGINT remove our rules and exit 0.
# The trap may run before "$!" is saved anywhere, so it kills the last background job
# itself; the sleeper holds no output open should it outlive us.
stop() {
	[ -z "${!:-}" ] || kill "$!" 2>/dev/null || true
	remove_rules
	exit 0
}
trap stop TERM INT
echo "$me sidecar: ready"
while :; do
	sleep 3600 >/dev/null 2>&1 </dev/null &
	wait "$!" || true
done
