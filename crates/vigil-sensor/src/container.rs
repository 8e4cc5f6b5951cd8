//! Container context: which container (if any) a process runs in, from its cgroup path.

use std::collections::HashMap;
use vigil_event::model::Container;

/// The container id and runtime a cgroup v2 path names, if it names one: a run of 64
/// hex digits in a segment such as `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope` or `.../docker/<id>`.
pub fn container_of_cgroup(path: &str) -> Option<Container> {
    for segment in path.split('/').rev() {
        let bytes = segment.as_bytes();
        let mut start = None;
        for (i, b) in bytes.iter().enumerate() {
            if b.is_ascii_hexdigit() {
                let s = *start.get_or_insert(i);
                if i + 1 - s == 64 && bytes.get(i + 1).is_none_or(|n| !n.is_ascii_hexdigit()) {
                    let id = &segment[s..=i];
                    let prefix = &segment[..s];
                    let runtime =
                        if prefix.contains("cri-containerd") || path.contains("containerd") {
                            "containerd"
                        } else if prefix.contains("crio") {
                            "cri-o"
                        } else if prefix.contains("libpod") || path.contains("libpod") {
                            "podman"
                        } else if prefix.contains("docker") || path.contains("/docker") {
                            "docker"
                        } else {
                            "unknown"
                        };
                    return Some(Container {
                        uid: Some(id.to_string()),
                        runtime: Some(runtime.to_string()),
                        ..Container::default()
                    });
                }
            } else {
                start = None;
            }
        }
    }
    None
}

/// The cgroup v2 path of a live process.
pub fn cgroup_path(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(String::from)
}

/// Cgroup id to (path, container), learnt from the first live process seen in each.
#[derive(Debug, Default)]
pub struct CgroupCache {
    map: HashMap<u64, (String, Option<Container>)>,
}

impl CgroupCache {
    /// The cgroup path and container of `cgroup_id`, looked up through `pid` on a miss.
    /// Bounded: cleared past 16,384 cgroups.
    pub fn lookup(&mut self, cgroup_id: u64, pid: u32) -> Option<&(String, Option<Container>)> {
        if !self.map.contains_key(&cgroup_id) {
            let path = cgroup_path(pid)?;
            if self.map.len() >= 16_384 {
                self.map.clear();
            }
            let container = container_of_cgroup(&path);
            self.map.insert(cgroup_id, (path, container));
        }
        self.map.get(&cgroup_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    #[test]
    fn runtimes_from_cgroup_paths() {
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/docker/{ID}"), "docker"),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/cri-containerd-{ID}.scope"),
                "containerd",
            ),
            (
                format!("/kubepods/besteffort/pod1/crio-{ID}.scope"),
                "cri-o",
            ),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                "podman",
            ),
        ];
        for (path, runtime) in cases {
            let c = container_of_cgroup(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(c.uid.as_deref(), Some(ID), "{path}");
            assert_eq!(c.runtime.as_deref(), Some(runtime), "{path}");
        }
    }

    #[test]
    fn hosts_are_not_containers() {
        for path in [
            "/",
            "/user.slice/user-0.slice/session-1.scope",
            "/system.slice/ssh.service",
        ] {
            assert_eq!(container_of_cgroup(path), None, "{path}");
        }
        // 63 or 65 hex digits are not a container id.
        assert_eq!(container_of_cgroup(&format!("/docker/{}", &ID[1..])), None);
        assert_eq!(container_of_cgroup(&format!("/docker/{ID}a")), None);
    }

    /// Cgroup paths with a container id in random places name it; mutated paths find
    /// an id or none, never panic.
    #[test]
    fn random_cgroup_paths() {
        let mut rng = crate::fuzz::Rng::for_test(8);
        let prefixes = [
            "docker-",
            "cri-containerd-",
            "crio-",
            "libpod-",
            "",
            "x\u{e9}",
        ];
        for i in 0..crate::fuzz::iterations() {
            let id: String = (0..64)
                .map(|_| char::from(b"0123456789abcdef"[rng.below(16)]))
                .collect();
            let path = format!(
                "/{}/{}{id}{}",
                crate::abi::testgen::word(&mut rng, 8),
                rng.pick(&prefixes),
                rng.pick(&[".scope", "", "/container", "-\u{2603}"])
            );
            let c = container_of_cgroup(&path).unwrap_or_else(|| panic!("{i}: {path}"));
            assert_eq!(c.uid.as_deref(), Some(id.as_str()), "{path}");
            let bad = rng.mutate_text(&path);
            if let Some(c) = crate::fuzz::no_panic("container_of_cgroup", i, bad.as_bytes(), || {
                container_of_cgroup(&bad)
            }) {
                let uid = c.uid.unwrap_or_default();
                assert!(uid.len() == 64 && uid.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }

    #[test]
    fn this_process_has_a_cgroup() {
        let mut cache = CgroupCache::default();
        assert!(cache.lookup(1, std::process::id()).is_some());
    }
}
