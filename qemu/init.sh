#!/bin/sh
# /init of memhp's test guest: busybox only. Kernel console on ttyS0; control channel on ttyS1.
#
# Protocol on ttyS1 (one line each way; see lib/guest/agent.ts):
#   host:  ID CMD [ARG...]            ARGs that may hold spaces or newlines are base64
#   guest: @@ID ok [B64]              success, B64 = output
#          @@ID err ERRNO [B64]       the kernel refused: ERRNO is the failing system call's errno
#                                     number (from /bin/memhp-io, qemu/memhp-io.c), B64 = message
#          @@ID fail [B64]            bad command or agent trouble; the agent goes on
#   at start: @@READY UPTIME RELEASE PROBES_OK PROBES_FAILED
# Commands: ping | read B64PATH | write B64PATH B64VALUE | census ROOT... | trace OFFSET
#           | insmod NAME [B64PARAMS] | rmmod NAME | chains | sh B64SCRIPT | poweroff
# Every system call whose result the host compares (read, write, insmod, rmmod, the census walk) is
# made by memhp-io, never by the shell: no strerror text is parsed, no byte of a value is lost.
export PATH=/bin:/sbin
/bin/busybox --install -s /bin
set -f # request words are never globs
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
T=/sys/kernel/tracing
[ -e $T/kprobe_events ] || T=/sys/kernel/debug/tracing
KVER=$(uname -r)
log() { echo "init: $*" > /dev/ttyS0; }

b64() { base64 -w 0; }

# ---- kprobe events from /probes.txt (generated per kernel by the host)
setup_probes() {
	echo 0 > $T/tracing_on
	echo > $T/trace
	echo 4096 > $T/buffer_size_kb
	ok=0; bad=0
	grep -v -e '^#' -e '^$' -e '^chain:' /probes.txt > /tmp/plain.probes
	while read -r line; do
		if echo "$line" >> $T/kprobe_events 2>/dev/null; then ok=$((ok+1)); else bad=$((bad+1)); log "probe FAILED: $line"; fi
	done < /tmp/plain.probes
	# Chain heads: _text + offsets calibrated on an earlier boot of this very kernel (KASLR moves the
	# whole image by one delta), else one pass over /proc/kallsyms.
	syms=$(grep '^chain:' /probes.txt | cut -d: -f2 | tr '\n' '|' | sed 's/|$//')
	: > /tmp/chain.syms
	if [ -n "$syms" ] && [ -s /chain-offsets ]; then
		text=$(grep -m1 ' _text$' /proc/kallsyms | cut -d' ' -f1)
		while read -r sym off; do printf '%016x d %s\n' $((0x$text + off)) $sym >> /tmp/chain.syms; done < /chain-offsets
	elif [ -n "$syms" ]; then
		grep -E " ($syms|_text)\$" /proc/kallsyms > /tmp/chain.syms
	fi
	grep '^chain:' /probes.txt > /tmp/chain.probes
	while IFS=: read -r _ sym ev args; do
		addr=$(grep " $sym\$" /tmp/chain.syms | head -1 | cut -d' ' -f1)
		line="p:hp/$ev blocking_notifier_call_chain nh=%di:x64 action=%si:u64 $args"
		if [ -n "$addr" ] && [ "$addr" != 0000000000000000 ] && echo "$line" >> $T/kprobe_events 2>/dev/null \
			&& echo "nh == 0x$addr" > $T/events/hp/$ev/filter; then
			ok=$((ok+1))
		else
			bad=$((bad+1)); log "chain probe FAILED: $sym ($addr): $line"
		fi
	done < /tmp/chain.probes
	[ -d $T/events/hp ] && echo 1 > $T/events/hp/enable
	echo 1 > $T/tracing_on
	echo "$ok $bad" > /tmp/probes.count
}

# ---- commands; each runs in a subshell so nothing it does can kill the agent
cmd_trace() {
	# Put a marker through the ring buffer and wait until trace_pipe delivered it: everything
	# recorded before this command is then in the log. First the uevent listener must have handled
	# every uevent the kernel has numbered so far (it writes each to trace_marker, then its SEQNUM to
	# /tmp/uevent.seq), so the step's uevents precede the marker. Both waits are bounded by the
	# guest's own clock (a loaded host slows the guest and its clock alike), and a sync that times
	# out fails loudly rather than hand back a log that records may still join later. The answer
	# starts with the kernel's uevent SEQNUM at the sync, so the host can check the step's range.
	read -r up _ < /proc/uptime; end=$(( ${up%.*} + 20 )); read -r want < /sys/kernel/uevent_seqnum
	while read -r have < /tmp/uevent.seq; [ "${have:-0}" -lt "$want" ]; do
		read -r up _ < /proc/uptime; [ "${up%.*}" -lt $end ] || { echo "fail $(printf 'trace sync: the uevent listener is at %s, the kernel at %s after 20 s' "$have" "$want" | b64)"; return; }
		usleep 1000
	done
	read -r tok < /proc/sys/kernel/random/uuid; tok="sync-$tok" # unique: uptime alone repeats within 10 ms
	echo "$tok" > $T/trace_marker
	while ! grep -qF "$tok" /tmp/trace.log; do
		read -r up _ < /proc/uptime; [ "${up%.*}" -lt $end ] || { echo "fail $(printf 'trace sync: the marker did not come through trace_pipe in 20 s' | b64)"; return; }
		usleep 1000
	done
	echo "ok $( (echo "seqnum $want"; tail -c +$(( ${1:-0} + 1 )) /tmp/trace.log) | b64)"
}

do_cmd() {
	c=$1; shift
	case "$c" in
	ping) echo "ok $(echo pong | b64)" ;;
	read) memhp-io read "$1" ;;
	write) memhp-io write "$1" "$2" ;;
	census) memhp-io census "$@" ;;
	trace) cmd_trace "$1" ;;
	insmod) if [ -f "/lib/modules/$1.ko" ]; then memhp-io insmod "/lib/modules/$1.ko" "$2"; else echo "err 2 $(printf 'no module %s' "$1" | b64)"; fi ;;
	rmmod) memhp-io rmmod "$1" ;;
	chains) echo "ok $(b64 < /tmp/chain.syms)" ;;
	sh) out=$(echo "$1" | base64 -d | sh 2>&1); echo "ok $(printf %s "$out" | b64)" ;;
	poweroff) echo ok; sync; poweroff -f ;;
	*) echo "fail $(printf 'unknown command: %s' "$c" | b64)" ;;
	esac
}

setup_probes
# Trace records and uevents go to one file, in ring-buffer order; uevents arrive via trace_marker.
cat $T/trace_pipe > /tmp/trace.log 2>/dev/null &
# The listener writes /tmp/uevent.seq once its socket is bound: no uevent after READY can be missed.
memhp-io uevents $T/trace_marker /tmp/uevent.seq > /dev/null 2>&1 &
while [ ! -s /tmp/uevent.seq ]; do usleep 1000; done
dmesg -n 7 2>/dev/null

stty -F /dev/ttyS1 raw -echo 115200 2>/dev/null
exec 3<>/dev/ttyS1
echo "@@READY $(cut -d' ' -f1 /proc/uptime) $KVER $(cat /tmp/probes.count)" >&3
while :; do
	while IFS= read -r line <&3; do
		line=$(printf %s "$line" | tr -d '\r')
		set -- $line
		[ $# -eq 0 ] && continue
		id=$1; shift
		case "$id" in *[!0-9]*) echo "@@0 fail $(printf 'bad request id: %s' "$id" | b64)" >&3; continue ;; esac
		reply=$( (do_cmd "$@") 2>/dev/null ) || true
		[ -n "$reply" ] || reply="fail $(echo 'command gave no answer' | b64)"
		echo "@@$id $reply" >&3
	done
	log "control channel read failed; reopening"
	sleep 1
	exec 3<>/dev/ttyS1
done
