/* Security-relevant syscalls: tp_btf/sys_enter keeps the arguments of the syscalls
 * watched (after kernel-side filtering), tp_btf/sys_exit reports them with their result
 * and what they referred to (the file opened, the socket's endpoints, a DNS payload). */

#include "syscalls.h"
#include <bpf/bpf_endian.h>

/* Older libbpf headers (Debian 12 ships 1.1) stop at the fifth argument. */
#ifndef PT_REGS_PARM6_CORE_SYSCALL
#if defined(__TARGET_ARCH_x86)
#define PT_REGS_PARM6_CORE_SYSCALL(x) BPF_CORE_READ((struct pt_regs *)(x), r9)
#elif defined(__TARGET_ARCH_arm64)
#define PT_REGS_PARM6_CORE_SYSCALL(x) BPF_CORE_READ((struct user_pt_regs *)(x), regs[5])
#endif
#endif

#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define FMODE_CREATED 0x100000
#define FMODE_WRITE 0x2
#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_UDP 17
#define AT_REMOVEDIR 0x200
#define BPF_PROG_LOAD 5

struct sys_args {
	__u64 args[6];
	__u32 nr;
	__u32 pad;
};

/* Arguments of watched syscalls in flight, per thread. LRU: a thread that dies inside
 * a syscall (another thread's exit_group) leaves its entry behind, and a plain hash
 * would fill with those until new entries failed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sys_args);
} vigil_sys_inflight SEC(".maps");

/* Files open for writing, by (tgid << 32 | fd), to report their close. LRU: a process
 * that never closes cannot fill it for the others. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} vigil_write_fds SEC(".maps");

static __always_inline bool is_open(long nr)
{
	return nr == NR_open || nr == NR_openat || nr == NR_creat || nr == NR_openat2;
}

static __always_inline bool is_file_op(long nr)
{
	return is_open(nr) || nr == NR_rename || nr == NR_renameat || nr == NR_renameat2 ||
	       nr == NR_unlink || nr == NR_unlinkat || nr == NR_rmdir || nr == NR_chmod ||
	       nr == NR_fchmod || nr == NR_fchmodat || nr == NR_fchmodat2 || nr == NR_chown ||
	       nr == NR_lchown || nr == NR_fchown || nr == NR_fchownat || nr == NR_symlink ||
	       nr == NR_symlinkat || nr == NR_link || nr == NR_linkat;
}

static __always_inline bool is_watched(long nr)
{
	return is_file_op(nr) || nr == NR_connect || nr == NR_accept || nr == NR_accept4 ||
	       nr == NR_listen || nr == NR_sendto || nr == NR_sendmsg || nr == NR_sendmmsg ||
	       nr == NR_ptrace || nr == NR_process_vm_writev || nr == NR_memfd_create ||
	       nr == NR_setuid || nr == NR_setgid || nr == NR_setreuid || nr == NR_setregid ||
	       nr == NR_setresuid || nr == NR_setresgid || nr == NR_capset || nr == NR_bpf ||
	       nr == NR_init_module || nr == NR_finit_module || nr == NR_mount;
}

/* Whether the arguments alone already say the call is not worth reporting. */
static __always_inline bool boring(long nr, __u64 *a)
{
	__u64 flags;
	if (nr == NR_open)
		flags = a[1];
	else if (nr == NR_openat)
		flags = a[2];
	else if (nr == NR_openat2) {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how.flags), (void *)a[2]);
		flags = how.flags;
	} else if (nr == NR_creat)
		return false;
	else if (nr == NR_ptrace) {
		__u64 req = a[0];
		/* PTRACE_TRACEME, POKETEXT, POKEDATA, POKEUSER, SETREGS, ATTACH, SEIZE */
		return !(req == 0 || req == 4 || req == 5 || req == 6 || req == 13 || req == 16 || req == 0x4206);
	} else if (nr == NR_bpf)
		return a[0] != BPF_PROG_LOAD;
	else
		return false;
	/* Opens: only for writing, creating or truncating. */
	return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) == 0;
}

static __always_inline int try_close(struct pt_regs *regs);

static __always_inline int try_sys_enter(struct pt_regs *regs, long nr)
{
	if (nr == NR_close)
		return try_close(regs);
	if (!is_watched(nr))
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	if (is_filtered(task))
		return 0;
	struct sys_args a = {};
	a.nr = nr;
	a.args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	a.args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	a.args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	a.args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	a.args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
	a.args[5] = PT_REGS_PARM6_CORE_SYSCALL(regs);
	if (boring(nr, a.args))
		return 0;
	__u64 key = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&vigil_sys_inflight, &key, &a, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(vigil_sys_enter, struct pt_regs *regs, long id)
{
	return try_sys_enter(regs, id);
}

static __always_inline struct file *fd_file(struct task_struct *t, __u64 fd)
{
	struct files_struct *files = BPF_CORE_READ(t, files);
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if (fd >= max)
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd & 0xffffff]);
	return f;
}

/* Fills r->sock from the socket behind fd; false when fd is not a socket. */
static __always_inline bool fd_sock(struct vigil_syscall *r, struct task_struct *t, __u64 fd)
{
	struct file *f = fd_file(t, fd);
	if (!f)
		return false;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return false;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return false;
	struct vigil_sock *s = &r->sock;
	s->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	s->protocol = BPF_CORE_READ(sk, sk_protocol);
	s->type = BPF_CORE_READ(sk, sk_type);
	s->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	s->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (s->family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(s->laddr, &l, 4);
		__builtin_memcpy(s->raddr, &d, 4);
	} else if (s->family == AF_INET6) {
		BPF_CORE_READ_INTO(&s->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&s->raddr, sk, __sk_common.skc_v6_daddr);
	}
	r->flags |= VIGIL_SYS_SOCK;
	return true;
}

static __always_inline void user_str(char *dst, __u16 *len, __u64 src)
{
	long n = src ? bpf_probe_read_user_str(dst, VIGIL_STR_LEN, (void *)src) : 0;
	*len = n > 0 ? n : 0;
}

static __always_inline void file_path(struct vigil_syscall *r, struct file *f)
{
	if (!f)
		return;
	bool trunc = false;
	r->str0_len = walk_path(2, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), &trunc);
	r->flags |= VIGIL_SYS_STR0_COMPONENTS;
	if (trunc)
		r->flags |= VIGIL_SYS_STR0_TRUNCATED;
}

/* When a path argument is relative, records the directory it starts from: the
 * cwd for AT_FDCWD (and the non-*at calls), else the directory dirfd refers to. */
static __always_inline void base_dir(struct vigil_syscall *r, struct task_struct *t, __s32 dirfd)
{
	bool rel0 = r->str0_len > 0 && r->str0[0] != '/';
	bool rel1 = r->str1_len > 0 && r->str1[0] != '/';
	if (!rel0 && !rel1)
		return;
	bool trunc = false;
	if (dirfd == -100) {
		struct fs_struct *fs = BPF_CORE_READ(t, fs);
		r->base_len = walk_path(3, BPF_CORE_READ(fs, pwd.dentry), BPF_CORE_READ(fs, pwd.mnt), &trunc);
	} else {
		struct file *f = fd_file(t, (__u32)dirfd);
		if (!f)
			return;
		r->base_len = walk_path(3, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), &trunc);
	}
	if (!trunc)
		r->flags |= VIGIL_SYS_BASE;
}

static __always_inline void user_data(struct vigil_syscall *r, __u64 buf, __u64 len)
{
	if (len > VIGIL_DATA_LEN) {
		len = VIGIL_DATA_LEN;
		r->flags |= VIGIL_SYS_DATA_TRUNCATED;
	}
	len &= (VIGIL_DATA_LEN - 1) | VIGIL_DATA_LEN;
	if (len > VIGIL_DATA_LEN)
		len = VIGIL_DATA_LEN;
	if (len && bpf_probe_read_user(r->data, len, (void *)buf) == 0)
		r->data_len = len;
}

static __always_inline void user_addr(struct vigil_syscall *r, __u64 addr, __u64 len)
{
	if (!addr)
		return;
	if (len > VIGIL_ADDR_LEN)
		len = VIGIL_ADDR_LEN;
	len &= (VIGIL_ADDR_LEN - 1) | VIGIL_ADDR_LEN;
	if (len > VIGIL_ADDR_LEN)
		len = VIGIL_ADDR_LEN;
	if (len && bpf_probe_read_user(r->addr, len, (void *)addr) == 0)
		r->addr_len = len;
}

/* The destination port of a user sockaddr (0 when none). */
static __always_inline __u16 addr_port(struct vigil_syscall *r)
{
	if (r->addr_len < 4)
		return 0;
	__u16 family = *(__u16 *)r->addr;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	return bpf_ntohs(*(__u16 *)(r->addr + 2));
}

/* A UDP send: reported only when it goes to port 53 (a DNS query). */
static __always_inline bool dns_send(struct vigil_syscall *r, struct task_struct *t, __u64 *a, long nr)
{
	if (!fd_sock(r, t, a[0]) || r->sock.protocol != IPPROTO_UDP)
		return false;
	__u64 buf = 0, len = 0, name = 0, namelen = 0;
	if (nr == NR_sendto) {
		buf = a[1];
		len = a[2];
		name = a[4];
		namelen = a[5];
	} else {
		/* sendmsg: a[1] is a msghdr; sendmmsg: a[1] is an array of mmsghdr whose first
		 * member is a msghdr. Either way the first message is at a[1]. */
		struct user_msghdr msg = {};
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a[1]) != 0)
			return false;
		name = (__u64)msg.msg_name;
		namelen = msg.msg_namelen;
		struct iovec iov = {};
		if (msg.msg_iovlen < 1 || bpf_probe_read_user(&iov, sizeof(iov), msg.msg_iov) != 0)
			return false;
		buf = (__u64)iov.iov_base;
		len = iov.iov_len;
	}
	user_addr(r, name, namelen);
	__u16 port = name ? addr_port(r) : r->sock.rport;
	if (port != 53)
		return false;
	user_data(r, buf, len);
	return true;
}

static __always_inline int try_sys_exit(long ret)
{
	__u64 key = bpf_get_current_pid_tgid();
	struct sys_args *inflight = bpf_map_lookup_elem(&vigil_sys_inflight, &key);
	if (!inflight)
		return 0;
	struct sys_args a = *inflight;
	bpf_map_delete_elem(&vigil_sys_inflight, &key);
	long nr = a.nr;
	/* A failed file operation changed nothing; other failures (a refused connect, a
	 * denied ptrace or module load) are worth knowing. */
	if (ret < 0 && is_file_op(nr))
		return 0;
	if (ret < 0 && (nr == NR_accept || nr == NR_accept4 || nr == NR_listen || nr == NR_sendto ||
			nr == NR_sendmsg || nr == NR_sendmmsg || nr == NR_memfd_create))
		return 0;

	__u32 zero = 0;
	struct vigil_syscall *r = bpf_map_lookup_elem(&vigil_sys_scratch, &zero);
	if (!r)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	r->nr = nr;
	r->flags = 0;
	r->ret = ret;
	for (int i = 0; i < 6; i++)
		r->args[i] = a.args[i];
	r->str0_len = r->str1_len = r->addr_len = r->data_len = r->base_len = 0;
	__builtin_memset(&r->sock, 0, sizeof(r->sock));

	if (is_open(nr)) {
		struct file *f = fd_file(task, ret);
		/* Only regular files: writes to /dev/null, ttys and pipes are noise. */
		if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFREG)
			return 0;
		if (BPF_CORE_READ(f, f_mode) & FMODE_WRITE) {
			__u64 wkey = (key & 0xffffffff00000000ULL) | (__u32)ret;
			__u8 one = 1;
			bpf_map_update_elem(&vigil_write_fds, &wkey, &one, BPF_ANY);
		}
		if (BPF_CORE_READ(f, f_mode) & FMODE_CREATED)
			r->flags |= VIGIL_SYS_FILE_CREATED;
		file_path(r, f);
	} else if (nr == NR_rename || nr == NR_symlink || nr == NR_link) {
		user_str(r->str0, &r->str0_len, a.args[0]);
		user_str(r->str1, &r->str1_len, a.args[1]);
		base_dir(r, task, -100);
	} else if (nr == NR_renameat || nr == NR_renameat2 || nr == NR_linkat) {
		user_str(r->str0, &r->str0_len, a.args[1]);
		user_str(r->str1, &r->str1_len, a.args[3]);
		base_dir(r, task, (__s32)a.args[0]);
	} else if (nr == NR_symlinkat) {
		user_str(r->str0, &r->str0_len, a.args[0]);
		user_str(r->str1, &r->str1_len, a.args[2]);
		base_dir(r, task, (__s32)a.args[1]);
	} else if (nr == NR_unlink || nr == NR_rmdir || nr == NR_chmod || nr == NR_chown ||
		   nr == NR_lchown) {
		user_str(r->str0, &r->str0_len, a.args[0]);
		base_dir(r, task, -100);
	} else if (nr == NR_unlinkat || nr == NR_fchmodat || nr == NR_fchmodat2 ||
		   nr == NR_fchownat) {
		user_str(r->str0, &r->str0_len, a.args[1]);
		base_dir(r, task, (__s32)a.args[0]);
	} else if (nr == NR_fchmod || nr == NR_fchown || nr == NR_finit_module) {
		file_path(r, fd_file(task, a.args[0]));
	} else if (nr == NR_connect) {
		if (!fd_sock(r, task, a.args[0]) ||
		    (r->sock.family != AF_INET && r->sock.family != AF_INET6))
			return 0;
		user_addr(r, a.args[1], a.args[2]);
	} else if (nr == NR_accept || nr == NR_accept4) {
		if (!fd_sock(r, task, ret) || (r->sock.family != AF_INET && r->sock.family != AF_INET6))
			return 0;
	} else if (nr == NR_listen) {
		if (!fd_sock(r, task, a.args[0]) ||
		    (r->sock.family != AF_INET && r->sock.family != AF_INET6))
			return 0;
	} else if (nr == NR_sendto || nr == NR_sendmsg || nr == NR_sendmmsg) {
		if (!dns_send(r, task, a.args, nr))
			return 0;
	} else if (nr == NR_memfd_create) {
		user_str(r->str0, &r->str0_len, a.args[0]);
	} else if (nr == NR_mount) {
		user_str(r->str0, &r->str0_len, a.args[1]); /* target */
		base_dir(r, task, -100);
		user_str(r->str1, &r->str1_len, a.args[0]); /* source */
		long n = a.args[2] ? bpf_probe_read_user_str(r->data, 64, (void *)a.args[2]) : 0;
		r->data_len = n > 0 ? n : 0;
	} else if (nr == NR_bpf) {
		union bpf_attr *attr = (union bpf_attr *)a.args[1];
		long n = bpf_probe_read_user_str(r->str0, 16, __builtin_preserve_access_index(&attr->prog_name));
		r->str0_len = n > 0 ? n : 0;
	}
	fill_header(&r->h, VIGIL_SYSCALL, sizeof(*r), task);
	if (bpf_ringbuf_output(&vigil_events, r, sizeof(*r), wakeup_flag()) != 0)
		count_drop(VIGIL_SYSCALL);
	return 0;
}

/* close(2) of a file opened for writing: reported at entry, while the fd still names
 * the file. (The closes done by exit and by exec, for close-on-exec files, are reported
 * by user space from the open records.) */
static __always_inline int try_close(struct pt_regs *regs)
{
	__u64 fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	__u64 wkey = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (__u32)fd;
	if (!bpf_map_lookup_elem(&vigil_write_fds, &wkey))
		return 0;
	bpf_map_delete_elem(&vigil_write_fds, &wkey);
	__u32 zero = 0;
	struct vigil_syscall *r = bpf_map_lookup_elem(&vigil_sys_scratch, &zero);
	if (!r)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	r->nr = NR_close;
	r->flags = 0;
	r->ret = 0;
	for (int i = 0; i < 6; i++)
		r->args[i] = 0;
	r->args[0] = fd;
	r->str0_len = r->str1_len = r->addr_len = r->data_len = r->base_len = 0;
	__builtin_memset(&r->sock, 0, sizeof(r->sock));
	file_path(r, fd_file(task, fd));
	fill_header(&r->h, VIGIL_SYSCALL, sizeof(*r), task);
	if (bpf_ringbuf_output(&vigil_events, r, sizeof(*r), wakeup_flag()) != 0)
		count_drop(VIGIL_SYSCALL);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(vigil_sys_exit, struct pt_regs *regs, long ret)
{
	return try_sys_exit(ret);
}
