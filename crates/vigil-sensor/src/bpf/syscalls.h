/* Numbers of the syscalls the sensor reports, per architecture. */
#ifndef VIGIL_SYSCALLS_H
#define VIGIL_SYSCALLS_H

#if defined(__TARGET_ARCH_x86)
#define NR_open 2
#define NR_close 3
#define NR_creat 85
#define NR_rename 82
#define NR_unlink 87
#define NR_rmdir 84
#define NR_chmod 90
#define NR_chown 92
#define NR_lchown 94
#define NR_symlink 88
#define NR_link 86
#define NR_openat 257
#define NR_openat2 437
#define NR_renameat 264
#define NR_renameat2 316
#define NR_unlinkat 263
#define NR_fchmod 91
#define NR_fchmodat 268
#define NR_fchmodat2 452
#define NR_fchown 93
#define NR_fchownat 260
#define NR_symlinkat 266
#define NR_linkat 265
#define NR_connect 42
#define NR_accept 43
#define NR_accept4 288
#define NR_listen 50
#define NR_sendto 44
#define NR_sendmsg 46
#define NR_sendmmsg 307
#define NR_ptrace 101
#define NR_process_vm_readv 310
#define NR_process_vm_writev 311
#define NR_memfd_create 319
#define NR_setuid 105
#define NR_setgid 106
#define NR_setreuid 113
#define NR_setregid 114
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_capset 126
#define NR_bpf 321
#define NR_init_module 175
#define NR_finit_module 313
#define NR_mount 165
#elif defined(__TARGET_ARCH_arm64)
/* arm64 has only the *at forms. */
#define NR_open -1
#define NR_close 57
#define NR_creat -1
#define NR_rename -1
#define NR_unlink -1
#define NR_rmdir -1
#define NR_chmod -1
#define NR_chown -1
#define NR_lchown -1
#define NR_symlink -1
#define NR_link -1
#define NR_openat 56
#define NR_openat2 437
#define NR_renameat 38
#define NR_renameat2 276
#define NR_unlinkat 35
#define NR_fchmod 52
#define NR_fchmodat 53
#define NR_fchmodat2 452
#define NR_fchown 55
#define NR_fchownat 54
#define NR_symlinkat 36
#define NR_linkat 37
#define NR_connect 203
#define NR_accept 202
#define NR_accept4 242
#define NR_listen 201
#define NR_sendto 206
#define NR_sendmsg 211
#define NR_sendmmsg 269
#define NR_ptrace 117
#define NR_process_vm_readv 270
#define NR_process_vm_writev 271
#define NR_memfd_create 279
#define NR_setuid 146
#define NR_setgid 144
#define NR_setreuid 145
#define NR_setregid 143
#define NR_setresuid 147
#define NR_setresgid 149
#define NR_capset 91
#define NR_bpf 280
#define NR_init_module 105
#define NR_finit_module 273
#define NR_mount 40
#else
#error "unsupported architecture"
#endif

#endif
