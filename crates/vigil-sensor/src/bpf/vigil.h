/* The ABI between Vigil's eBPF programs and user space: every record the kernel side
 * writes to the ring buffer. Mirrored by src/abi.rs (#[repr(C)]); both sides assert the
 * sizes, so a change on one side that is not made on the other fails the build. */
#ifndef VIGIL_H
#define VIGIL_H

#define VIGIL_COMM_LEN 16
#define VIGIL_TTY_LEN 16
/* Words of the open-descriptor bitmap an exec record carries (the first 256 fds). */
#define VIGIL_OPEN_FDS_WORDS 4
/* Bytes of argv kept per exec (NUL-separated, as in the process's memory). */
#define VIGIL_ARGV_LEN 4096
/* Bytes of an executable's or cwd's path, as NUL-separated components, leaf first. */
#define VIGIL_PATH_LEN 2048
/* Bytes of the file name given to execve. */
#define VIGIL_FILENAME_LEN 512
/* Path components walked at most (deeper paths are marked truncated). */
#define VIGIL_PATH_DEPTH 32
/* Bytes of one path component read at most (NAME_MAX + NUL). */
#define VIGIL_NAME_LEN 256

enum vigil_kind {
	VIGIL_EXEC = 1,
	VIGIL_FORK = 2,
	VIGIL_EXIT = 3,
	VIGIL_SYSCALL = 4,
	VIGIL_KIND_MAX = 16,
};

/* Flags in vigil_exec.flags. */
#define VIGIL_EXEC_ARGV_TRUNCATED (1u << 0)
#define VIGIL_EXEC_EXE_TRUNCATED (1u << 1)
#define VIGIL_EXEC_CWD_TRUNCATED (1u << 2)
#define VIGIL_EXEC_ARGV_FAULT (1u << 3)
#define VIGIL_EXEC_EXE_UNLINKED (1u << 4)

/* Common to every record. */
struct vigil_header {
	__u32 kind;	     /* enum vigil_kind */
	__u32 size;	     /* bytes of the whole record, this header included */
	__u64 ktime;	     /* bpf_ktime_get_boot_ns() at the event */
	__u32 pid;	     /* tgid of the process the event is about */
	__u32 tid;	     /* thread that caused it */
	__u32 ppid;	     /* tgid of its real parent */
	__u32 pad;
	__u64 start_boottime; /* its start, ns since boot (as /proc/PID/stat) */
	__u64 parent_start_boottime;
	__u64 cgroup_id;
	char comm[VIGIL_COMM_LEN];
};

struct vigil_creds {
	__u32 uid, gid, euid, egid, suid, sgid, fsuid, fsgid;
	__u32 loginuid, sessionid;
	__u64 cap_effective, cap_permitted, cap_inheritable;
};

/* A successful execve/execveat. Variable-length data follows in fixed slots; only the
 * bytes up to the end of argv (header.size) are sent. */
struct vigil_exec {
	struct vigil_header h;
	struct vigil_creds creds;
	__u64 exe_ino;
	__u64 exe_mtime_sec;
	__u32 exe_mtime_nsec;
	__u32 exe_dev;
	__u32 exe_nlink;
	__u32 flags;
	__u32 old_pid;
	__u32 open_fds_max;  /* descriptors open_fds[] covers (0 to 64 * VIGIL_OPEN_FDS_WORDS) */
	__u64 open_fds[VIGIL_OPEN_FDS_WORDS]; /* after the exec: which descriptors are open */
	__u16 exe_len;	     /* bytes used in exe[] */
	__u16 cwd_len;	     /* bytes used in cwd[] */
	__u16 filename_len;  /* bytes used in filename[] */
	__u16 argv_len;	     /* bytes used in argv[] */
	char tty[VIGIL_TTY_LEN];
	char exe[VIGIL_PATH_LEN];
	char cwd[VIGIL_PATH_LEN];
	char filename[VIGIL_FILENAME_LEN];
	char argv[VIGIL_ARGV_LEN];
};

/* A new process (not a thread): h.pid is the child, h.ppid its parent. */
struct vigil_fork {
	struct vigil_header h;
	struct vigil_creds creds;
};

/* A process (its thread group leader) exited. */
struct vigil_exit {
	struct vigil_header h;
	__u32 exit_code; /* as wait(2) reports it: (code << 8) | signal */
	__u32 pad;
};

/* Bytes of a path or string argument of a syscall record. */
#define VIGIL_STR_LEN 2048
/* Bytes of a user-supplied socket address. */
#define VIGIL_ADDR_LEN 128
/* Bytes of payload kept (a DNS message). */
#define VIGIL_DATA_LEN 512

/* Flags in vigil_syscall.flags. */
#define VIGIL_SYS_STR0_COMPONENTS (1u << 0) /* str0 is a kernel path walk, leaf first */
#define VIGIL_SYS_STR0_TRUNCATED (1u << 1)
#define VIGIL_SYS_SOCK (1u << 2)	  /* sock holds the socket's state */
#define VIGIL_SYS_FILE_CREATED (1u << 3)  /* the open created the file */
#define VIGIL_SYS_DATA_TRUNCATED (1u << 4)
#define VIGIL_SYS_BASE (1u << 5)	  /* base holds the directory relative paths start from */
#define VIGIL_SYS_WATCHED_READ (1u << 6) /* a read-only open the watch list let through */

/* A socket's state, read from the kernel. Addresses in network byte order. */
struct vigil_sock {
	__u16 family;
	__u16 protocol;
	__u16 type;
	__u16 lport; /* host byte order */
	__u16 rport; /* host byte order */
	__u16 pad[3];
	__u8 laddr[16];
	__u8 raddr[16];
};

/* A security-relevant syscall, reported at its exit with its arguments, result and
 * what it referred to. For openat2, args[2] is the flags of its struct open_how (read
 * from the caller's memory), not the struct's address. */
struct vigil_syscall {
	struct vigil_header h;
	__u32 nr;     /* syscall number (of this architecture) */
	__u32 flags;  /* VIGIL_SYS_* */
	__s64 ret;
	__u64 args[6];
	__u16 str0_len, str1_len, addr_len, data_len;
	__u16 base_len;
	__u16 pad[3];
	struct vigil_sock sock;
	char str0[VIGIL_STR_LEN];
	char str1[VIGIL_STR_LEN];
	char base[VIGIL_STR_LEN];
	__u8 addr[VIGIL_ADDR_LEN];
	__u8 data[VIGIL_DATA_LEN];
};

/* Index of the agent's settings in the `vigil_cfg` array map. */
struct vigil_config {
	__u32 agent_tgid; /* events of this process are not reported */
	__u32 pad;
	/* An exec record wakes the reader unless it was awake within this many ns
	 * (0: execs wait for a batch like other records). */
	__u64 exec_wake_gap_ns;
	/* When the reader was last awake (ns since boot): written by the reader after
	 * each drain, and here when an exec wakes it. */
	__u64 last_wake_ns;
};

/* Patterns of the watch list at most. */
#define VIGIL_WATCH_MAX 16

/* One pattern of the watch list (files whose read-only opens are reported), as the
 * kernel side checks it: the opened file's name and its parent directory's name, with
 * bounded masked compares. User space then matches the whole path. Names are read as
 * little-endian words: byte i of a name is bits 8i..8i+7 of its word. */
struct vigil_watch_rule {
	__u64 prefix[2];      /* the name's first 16 bytes ... */
	__u64 prefix_mask[2]; /* ... where these bits are set (a literal name: its NUL too) */
	__u64 suffix;	      /* the name's last 8 bytes, right-aligned ... */
	__u64 suffix_mask;    /* ... where these bits are set */
	__u32 min_len;	      /* the name's length: at least */
	__u32 max_len;	      /* and at most */
	__u64 parent[2];      /* the parent directory's name, NUL-terminated ... */
	__u64 parent_mask[2]; /* ... where these bits are set (zero: any parent) */
};

/* The watch list, the one entry of the `vigil_watch` array map. */
struct vigil_watch {
	__u32 count; /* rules in use */
	__u32 pad;
	/* The first check, before any rule: bit min(len, 63) of first_len[b] is set when some
	 * rule takes a name of length len starting with byte b. */
	__u64 first_len[256];
	struct vigil_watch_rule rules[VIGIL_WATCH_MAX];
};

#ifndef __cplusplus
_Static_assert(sizeof(struct vigil_config) == 24, "vigil_config ABI");
_Static_assert(sizeof(struct vigil_header) == 72, "vigil_header ABI");
_Static_assert(sizeof(struct vigil_creds) == 64, "vigil_creds ABI");
_Static_assert(sizeof(struct vigil_exec) == 72 + 64 + 48 + 32 + 16 + 2048 * 2 + 512 + 4096, "vigil_exec ABI");
_Static_assert(sizeof(struct vigil_fork) == 136, "vigil_fork ABI");
_Static_assert(sizeof(struct vigil_exit) == 80, "vigil_exit ABI");
_Static_assert(sizeof(struct vigil_sock) == 48, "vigil_sock ABI");
_Static_assert(sizeof(struct vigil_watch_rule) == 88, "vigil_watch_rule ABI");
_Static_assert(sizeof(struct vigil_watch) == 8 + 256 * 8 + 16 * 88, "vigil_watch ABI");
_Static_assert(sizeof(struct vigil_syscall) == 72 + 16 + 48 + 16 + 48 + 2048 * 3 + 128 + 512, "vigil_syscall ABI");
#endif

#endif
