#!/bin/sh
# /init of memhp's test guest: busybox only. Kernel console on ttyS0; control channel on ttyS1.
#
# Protocol on ttyS1 (one line each way; see lib/guest/agent.ts):
#   host:  ID CMD [ARG...]            ARGs that may hold spaces or newlines are base64
#   guest: @@ID ok [B64]              success, B64 = output
#          @@ID err ERRNO [B64]       the kernel refused (ERRNO like EBUSY), B64 = message
#          @@ID fail [B64]            bad command or agent trouble; the agent goes on
#   at start: @@READY UPTIME RELEASE PROBES_OK PROBES_FAILED
# Commands: ping | read PATH | write PATH B64VALUE | dump PATH | trace OFFSET | insmod NAME [B64PARAMS]
#           | rmmod NAME | chains | sh B64SCRIPT | poweroff
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

# ---- errno from a strerror text (glibc messages; ash says "nonexistent directory" for ENOENT)
errno_of() {
	case "$1" in
	*"No such device or address"*) echo ENXIO ;;
	*"No such file or directory"* | *"nonexistent directory"*) echo ENOENT ;;
	*"Operation not permitted"*) echo EPERM ;;
	*"No such process"*) echo ESRCH ;;
	*"Interrupted system call"*) echo EINTR ;;
	*"Input/output error"*) echo EIO ;;
	*"Argument list too long"*) echo E2BIG ;;
	*"Bad file descriptor"*) echo EBADF ;;
	*"Resource temporarily unavailable"*) echo EAGAIN ;;
	*"Cannot allocate memory"*) echo ENOMEM ;;
	*"Permission denied"*) echo EACCES ;;
	*"Bad address"*) echo EFAULT ;;
	*"Device or resource busy"*) echo EBUSY ;;
	*"File exists"*) echo EEXIST ;;
	*"No such device"*) echo ENODEV ;;
	*"Not a directory"*) echo ENOTDIR ;;
	*"Is a directory"*) echo EISDIR ;;
	*"Invalid argument"*) echo EINVAL ;;
	*"No space left on device"*) echo ENOSPC ;;
	*"Numerical result out of range"*) echo ERANGE ;;
	*"Resource deadlock avoided"*) echo EDEADLK ;;
	*"Function not implemented"*) echo ENOSYS ;;
	*"No data available"*) echo ENODATA ;;
	*"Operation not supported"*) echo EOPNOTSUPP ;;
	*"Connection timed out"*) echo ETIMEDOUT ;;
	*"Operation canceled"*) echo ECANCELED ;;
	*"Memory page has hardware error"*) echo EHWPOISON ;;
	*"Unknown symbol"* | *"Invalid module format"* | *"Exec format error"*) echo ENOEXEC ;;
	# strerror of a number without a name (a notifier may veto with any errno up to 4095): E<n>
	*"Unknown error "[0-9]*) n=${1##*Unknown error }; echo "E${n%%[!0-9]*}" ;;
	*) echo EIO ;;
	esac
}

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
cmd_read() {
	[ -n "$1" ] || { echo "fail $(echo 'read: no path' | b64)"; return; }
	if out=$(cat "$1" 2>/tmp/err; echo x); then :; fi
	if [ -s /tmp/err ]; then m=$(cat /tmp/err); echo "err $(errno_of "$m") $(printf %s "$m" | b64)"
	else echo "ok $(printf %s "${out%x}" | b64)"; fi
}
cmd_write() {
	[ -n "$1" ] || { echo "fail $(echo 'write: no path' | b64)"; return; }
	# ash would create a missing file in a writable fs (/tmp); sysfs says ENOENT anyway, so say it for all.
	[ -e "$1" ] || { echo "err ENOENT $(printf '%s: No such file or directory' "$1" | b64)"; return; }
	v=$(echo "$2" | base64 -d; echo x); v=${v%x}
	# dd, not the shell's printf: ash's printf fails silently, dd names the errno ("error writing").
	if printf %s "$v" | dd of="$1" bs=1M conv=notrunc 2>/tmp/err; then echo ok
	# Drop only dd's statistics lines ("0+0 records in", "0 bytes (0B) copied"), not an error naming a path.
	else m=$(grep -v '^[0-9+]* records \(in\|out\)$\|^[0-9]* bytes ' /tmp/err); echo "err $(errno_of "$m") $(printf %s "$m" | b64)"; fi
}
cmd_dump() {
	[ -e "$1" ] || { echo "err ENOENT $(printf '%s: No such file or directory' "$1" | b64)"; return; }
	find "$1" -type f 2>/dev/null | sort | while read -r f; do
		if v=$(cat "$f" 2>/tmp/err; echo x) && [ ! -s /tmp/err ]; then echo "$f ok $(printf %s "${v%x}" | b64)"
		else echo "$f err $(errno_of "$(cat /tmp/err)")"; fi
	done > /tmp/dump.out
	echo "ok $(b64 < /tmp/dump.out)"
}
cmd_trace() {
	# Put a marker through the ring buffer and wait until trace_pipe delivered it: everything
	# recorded before this command is then in the log.
	# First let the uevent listener catch up with the kernel's uevent sequence number. busybox uevent
	# runs one shell per event, one after another: under TCG on a loaded host a DIMM's 16 events took
	# over 2 s, and late ones landed in the next step. Both waits are bounded by guest uptime, not by
	# a loop count (a loaded host makes each poll slow), and a sync that times out fails loudly rather
	# than hand back a log that records may still join later, in the wrong step.
	read -r up _ < /proc/uptime; end=$(( ${up%.*} + 20 )); read -r want < /sys/kernel/uevent_seqnum
	while [ "$(cat /tmp/uevent.seq 2>/dev/null || echo 0)" -lt "$want" ]; do
		read -r up _ < /proc/uptime; [ "${up%.*}" -lt $end ] || { echo "fail $(printf 'trace sync: the uevent listener is still behind the kernel after 20 s' | b64)"; return; }
		usleep 2000
	done
	read -r tok < /proc/sys/kernel/random/uuid; tok="sync-$tok" # unique: uptime alone repeats within 10 ms
	echo "$tok" > $T/trace_marker
	while ! grep -qF "$tok" /tmp/trace.log; do
		read -r up _ < /proc/uptime; [ "${up%.*}" -lt $end ] || { echo "fail $(printf 'trace sync: the marker did not come through trace_pipe in 20 s' | b64)"; return; }
		usleep 1000
	done
	echo "ok $(tail -c +$(( ${1:-0} + 1 )) /tmp/trace.log | b64)"
}
cmd_insmod() {
	f=/lib/modules/$1.ko
	[ -f "$f" ] || { echo "err ENOENT $(printf 'no module %s' "$1" | b64)"; return; }
	p=$(echo "$2" | base64 -d)
	if insmod "$f" $p 2>/tmp/err; then echo ok
	else m=$(cat /tmp/err); echo "err $(errno_of "$m") $(printf %s "$m" | b64)"; fi
}
cmd_rmmod() {
	if rmmod "$1" 2>/tmp/err; then echo ok; else m=$(cat /tmp/err); echo "err $(errno_of "$m") $(printf %s "$m" | b64)"; fi
}

do_cmd() {
	c=$1; shift
	case "$c" in
	ping) echo "ok $(echo pong | b64)" ;;
	read) cmd_read "$1" ;;
	write) cmd_write "$1" "$2" ;;
	dump) cmd_dump "$1" ;;
	trace) cmd_trace "$1" ;;
	insmod) cmd_insmod "$1" "$2" ;;
	rmmod) cmd_rmmod "$1" ;;
	chains) echo "ok $(b64 < /tmp/chain.syms)" ;;
	sh) out=$(echo "$1" | base64 -d | sh 2>&1); echo "ok $(printf %s "$out" | b64)" ;;
	poweroff) echo ok; sync; poweroff -f ;;
	*) echo "fail $(printf 'unknown command: %s' "$c" | b64)" ;;
	esac
}

setup_probes
# Trace records and uevents go to one file, in ring-buffer order; uevents arrive via trace_marker.
cat $T/trace_pipe > /tmp/trace.log 2>/dev/null &
cat /sys/kernel/uevent_seqnum > /tmp/uevent.seq
uevent sh -c "echo \"uevent \$SEQNUM \$ACTION \$SUBSYSTEM \$DEVPATH\" > $T/trace_marker; echo \$SEQNUM > /tmp/uevent.seq" > /dev/null 2>&1 &
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
