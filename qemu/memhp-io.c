/*
 * memhp-io: the system calls of memhp's guest agent (qemu/init.sh), so that what the host observes is
 * what the kernel returned, byte for byte and errno for errno, not what a shell or busybox made of it.
 * Built static on the host (lib/guest/helper.ts) and shipped in the guest's initramfs as /bin/memhp-io.
 *
 * Every command but `uevents` prints one answer fragment on stdout, which the agent prefixes with
 * its request id:
 *   ok [B64]            success; B64 = the data (a file's bytes, a census)
 *   err ERRNO [B64]     the system call failed; ERRNO is its number, B64 a message naming the call
 *
 *   memhp-io read B64PATH           open(O_RDONLY) + read(2) to EOF
 *   memhp-io write B64PATH B64      open(O_WRONLY|O_TRUNC), as `echo -n > PATH` opens (no O_CREAT: a
 *                                   missing file is ENOENT), + write(2) of exactly the decoded bytes; a zero-length
 *                                   value is one write(2) of zero bytes; a short write is continued with
 *                                   the rest, as echo(1) does; an EINTR is reported, not retried (echo
 *                                   would retry it forever: see cmd_write)
 *   memhp-io insmod FILE [B64ARGS]  finit_module(2) with the decoded parameter string
 *   memhp-io rmmod NAME             delete_module(2) with O_NONBLOCK, dashes read as underscores, as rmmod(8) does
 *   memhp-io census ROOT...         every entry under each root, links not followed: one line each,
 *                                   PATH TAB TYPE TAB MODE TAB VALUE, TYPE d/f/l/o, MODE octal permission
 *                                   bits, VALUE the link target, =B64 of a file's bytes, or !ERRNO
 *   memhp-io uevents MARKER SEQFILE the uevent listener (a daemon): every kernel uevent is written to
 *                                   MARKER (the tracing trace_marker) as `uevent SEQNUM ACTION SUBSYSTEM
 *                                   DEVPATH`, then SEQNUM to SEQFILE; a lost event (ENOBUFS) is written
 *                                   as `uevent-lost`. SEQFILE is written first once the socket listens.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(FILE *out, const unsigned char *p, size_t n) {
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		fputc(B64[v >> 18 & 63], out);
		fputc(B64[v >> 12 & 63], out);
		fputc(i + 1 < n ? B64[v >> 6 & 63] : '=', out);
		fputc(i + 2 < n ? B64[v & 63] : '=', out);
	}
}

/* Decode base64 in place; returns the length, or -1 on a bad character. */
static long from_b64(char *s) {
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (char *c = s; *c && *c != '='; c++) {
		const char *at = strchr(B64, *c);
		if (!at) return -1;
		acc = acc << 6 | (unsigned)(at - B64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[o++] = (char)(acc >> bits & 0xff);
		}
	}
	return (long)o;
}

static int err(int e, const char *call, const char *path) {
	char msg[4096];
	int n = snprintf(msg, sizeof msg, "%s %s: %s", call, path, strerror(e));
	printf("err %d ", e);
	put_b64(stdout, (unsigned char *)msg, n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n);
	putchar('\n');
	return 0;
}

/* Read a whole file; returns its length or -errno. *buf is malloc'd. */
static long slurp(const char *path, char **buf) {
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) return -errno;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	for (;;) {
		if (n == cap) b = realloc(b, cap *= 2);
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0) {
			/* As for write: without a signal handler an EINTR is the kernel's answer, not a retry. */
			int e = errno;
			close(fd);
			free(b);
			return -e;
		}
		if (r == 0) break;
		n += (size_t)r;
	}
	close(fd);
	*buf = b;
	return (long)n;
}

static int cmd_read(const char *path) {
	char *b;
	long n = slurp(path, &b);
	if (n < 0) return err((int)-n, "read", path);
	fputs("ok ", stdout);
	put_b64(stdout, (unsigned char *)b, (size_t)n);
	putchar('\n');
	free(b);
	return 0;
}

static int cmd_write(const char *path, char *b64) {
	long n = from_b64(b64);
	if (n < 0) {
		printf("fail\n");
		return 1;
	}
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) return err(errno, "open", path);
	long done = 0;
	do {
		ssize_t w = write(fd, b64 + done, (size_t)(n - done));
		if (w < 0) {
			/* No EINTR retry: memhp-io has no signal handler, so an EINTR is the kernel's answer (a
			 * notifier's -EINTR veto, offline_pages cut short), which echo(1) would retry forever. */
			int e = errno;
			close(fd);
			return err(e, "write", path);
		}
		if (w == 0 && n > 0) break; /* the file takes no more: what echo(1) reports as success */
		done += w;
	} while (done < n);
	if (close(fd) < 0) return err(errno, "close", path);
	puts("ok");
	return 0;
}

static int cmd_insmod(const char *file, char *b64) {
	char empty[] = "";
	char *params = empty;
	if (b64) {
		long n = from_b64(b64);
		if (n < 0) {
			printf("fail\n");
			return 1;
		}
		b64[n] = 0;
		params = b64;
	}
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return err(errno, "open", file);
	if (syscall(SYS_finit_module, fd, params, 0) < 0) return err(errno, "finit_module", file);
	close(fd);
	puts("ok");
	return 0;
}

static int cmd_rmmod(const char *name) {
	/* Module names are kept with underscores; rmmod(8) turns dashes into them. */
	char mod[256];
	snprintf(mod, sizeof mod, "%s", name);
	for (char *c = mod; *c; c++)
		if (*c == '-') *c = '_';
	if (syscall(SYS_delete_module, mod, O_NONBLOCK) < 0) return err(errno, "delete_module", name);
	puts("ok");
	return 0;
}

static void census_entry(FILE *out, const char *path) {
	struct stat st;
	if (lstat(path, &st) < 0) {
		fprintf(out, "%s\to\t0\t!%d\n", path, errno);
		return;
	}
	unsigned mode = st.st_mode & 07777;
	if (S_ISLNK(st.st_mode)) {
		char t[4096];
		ssize_t n = readlink(path, t, sizeof t - 1);
		t[n < 0 ? 0 : n] = 0;
		fprintf(out, "%s\tl\t%o\t%s\n", path, mode, t);
	} else if (S_ISDIR(st.st_mode)) {
		fprintf(out, "%s\td\t%o\t\n", path, mode);
		struct dirent **names;
		int k = scandir(path, &names, NULL, alphasort);
		for (int i = 0; i < k; i++) {
			const char *d = names[i]->d_name;
			if (strcmp(d, ".") && strcmp(d, "..")) {
				char child[4096];
				snprintf(child, sizeof child, "%s/%s", path, d);
				census_entry(out, child);
			}
			free(names[i]);
		}
		if (k >= 0) free(names);
	} else if (S_ISREG(st.st_mode)) {
		char *b;
		long n = slurp(path, &b);
		if (n < 0) {
			fprintf(out, "%s\tf\t%o\t!%ld\n", path, mode, -n);
			return;
		}
		fprintf(out, "%s\tf\t%o\t=", path, mode);
		put_b64(out, (unsigned char *)b, (size_t)n);
		fputc('\n', out);
		free(b);
	} else {
		fprintf(out, "%s\to\t%o\t\n", path, mode);
	}
}

static int cmd_census(int n, char **roots) {
	/* Collected first: the answer is one line (a root that does not exist is an entry too). */
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	for (int i = 0; i < n; i++) census_entry(mem, roots[i]);
	fclose(mem);
	fputs("ok ", stdout);
	put_b64(stdout, (unsigned char *)text, len);
	putchar('\n');
	free(text);
	return 0;
}

/* One netlink message: NUL-separated `ACTION@DEVPATH` then KEY=VALUE strings. */
static void uevent_out(int marker, int seqfd, const char *msg, size_t n) {
	const char *seq = "", *action = "", *subsystem = "", *devpath = "";
	for (size_t i = 0; i < n; i += strlen(msg + i) + 1) {
		const char *kv = msg + i;
		if (!strncmp(kv, "SEQNUM=", 7)) seq = kv + 7;
		else if (!strncmp(kv, "ACTION=", 7)) action = kv + 7;
		else if (!strncmp(kv, "SUBSYSTEM=", 10)) subsystem = kv + 10;
		else if (!strncmp(kv, "DEVPATH=", 8)) devpath = kv + 8;
	}
	if (!*seq) return; /* not a kernel uevent (a udev-daemon message) */
	char line[8192];
	int len = snprintf(line, sizeof line, "uevent %s %s %s %s", seq, action, subsystem, devpath);
	if (len > 0) (void)!write(marker, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
	/* Fixed width, so a reader never sees a half-rewritten number and no truncation is needed. */
	char num[24];
	snprintf(num, sizeof num, "%20s\n", seq);
	(void)!pwrite(seqfd, num, 21, 0);
}

static int cmd_uevents(const char *marker_path, const char *seq_path) {
	int marker = open(marker_path, O_WRONLY | O_CLOEXEC);
	int seqfd = open(seq_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (marker < 0 || seqfd < 0 || fd < 0) return err(errno, "uevents", marker_path);
	int size = 64 << 20; /* a DIMM's blocks come in a burst; never lose one (root may force the size) */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return err(errno, "bind", "uevent netlink");
	/* Every uevent numbered after this one reaches the socket: SEQFILE says so, and that we listen. */
	char *now;
	long n0 = slurp("/sys/kernel/uevent_seqnum", &now);
	if (n0 <= 0) return err(n0 < 0 ? (int)-n0 : EIO, "read", "/sys/kernel/uevent_seqnum");
	now[n0 - 1] = 0;
	char num[24];
	snprintf(num, sizeof num, "%20s\n", now);
	(void)!pwrite(seqfd, num, 21, 0);
	static char buf[64 << 10];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			if (errno == ENOBUFS) {
				(void)!write(marker, "uevent-lost", 11);
				continue;
			}
			return 1;
		}
		buf[n] = 0;
		uevent_out(marker, seqfd, buf, (size_t)n);
	}
}

/* A path sent base64-encoded (any bytes but NUL, spaces included), decoded in place; NULL if bad. */
static char *path_arg(char *b64) {
	long n = from_b64(b64);
	if (n <= 0 || memchr(b64, 0, (size_t)n)) return NULL;
	b64[n] = 0;
	return b64;
}

int main(int argc, char **argv) {
	const char *c = argc > 1 ? argv[1] : "";
	/* read and write take their path base64-encoded, so a path is never split into words. */
	if ((!strcmp(c, "read") || !strcmp(c, "write")) && argc >= 3 && !path_arg(argv[2])) {
		puts("fail");
		return 1;
	}
	if (!strcmp(c, "read") && argc == 3) return cmd_read(argv[2]);
	if (!strcmp(c, "write") && argc == 4) return cmd_write(argv[2], argv[3]);
	if (!strcmp(c, "write") && argc == 3) return cmd_write(argv[2], (char[]){0});
	if (!strcmp(c, "insmod") && (argc == 3 || argc == 4)) return cmd_insmod(argv[2], argc == 4 ? argv[3] : NULL);
	if (!strcmp(c, "rmmod") && argc == 3) return cmd_rmmod(argv[2]);
	if (!strcmp(c, "census") && argc >= 3) return cmd_census(argc - 2, argv + 2);
	if (!strcmp(c, "uevents") && argc == 4) return cmd_uevents(argv[2], argv[3]);
	fprintf(stderr, "usage: memhp-io read|write|insmod|rmmod|census|uevents ...\n");
	return 2;
}
