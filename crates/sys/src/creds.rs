//! Credentials: resolve `uid`/`gid`/`chown-socket` by name or number, chroot, drop
//! privileges with supplementary groups, and verify root cannot be regained.

use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CredError {
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("could not chroot to {path}: {source}")]
    Chroot { path: String, source: nix::Error },
    #[error("could not set supplementary groups: {0}")]
    Groups(nix::Error),
    #[error("could not setgid({gid}): {source}")]
    SetGid { gid: u32, source: nix::Error },
    #[error("could not setuid({uid}): {source}")]
    SetUid { uid: u32, source: nix::Error },
    #[error("privileges were dropped but setuid(0) still succeeds; refusing to run")]
    CanRegainRoot,
    #[error("uid {0} has no passwd entry, so it has no primary group and the process would keep gid 0 (root's group); set gid explicitly")]
    NoPrimaryGroup(u32),
    #[error("running as uid {current}, cannot switch to uid {wanted} without root")]
    NotRoot { current: u32, wanted: u32 },
}

/// A resolved user: uid, primary gid, and name (for initgroups) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub primary_gid: Option<u32>,
    pub name: Option<String>,
}

/// Resolve `uid` as written: a name, or a number (looked up for its name and primary group).
pub fn resolve_user(spec: &str) -> Result<ResolvedUser, CredError> {
    if let Ok(n) = spec.parse::<u32>() {
        let u = User::from_uid(Uid::from_raw(n)).ok().flatten();
        return Ok(ResolvedUser {
            uid: n,
            primary_gid: u.as_ref().map(|u| u.gid.as_raw()),
            name: u.map(|u| u.name),
        });
    }
    match User::from_name(spec) {
        Ok(Some(u)) => Ok(ResolvedUser {
            uid: u.uid.as_raw(),
            primary_gid: Some(u.gid.as_raw()),
            name: Some(u.name),
        }),
        _ => Err(CredError::UnknownUser(spec.to_string())),
    }
}

/// Resolve `gid` as written: a name or a number.
pub fn resolve_group(spec: &str) -> Result<u32, CredError> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(n);
    }
    match Group::from_name(spec) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(CredError::UnknownGroup(spec.to_string())),
    }
}

/// Resolve `chown-socket = user[:group]` to (uid, gid). A user without group keeps the
/// user's primary group.
pub fn resolve_owner(spec: &str) -> Result<(Option<u32>, Option<u32>), CredError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if u.is_empty() {
        None
    } else {
        Some(resolve_user(u)?)
    };
    let gid = match g {
        Some(g) if !g.is_empty() => Some(resolve_group(g)?),
        _ => user.as_ref().and_then(|u| u.primary_gid),
    };
    Ok((user.map(|u| u.uid), gid))
}

/// The identity to switch to, resolved before chroot (name lookups need /etc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: Option<ResolvedUser>,
    pub gid: Option<u32>,
    pub initgroups: bool,
}

impl Identity {
    /// From the `uid`/`gid`/`no-initgroups` options. `uid` without `gid` takes the user's
    /// primary group (unlike uWSGI, which left the group as root).
    pub fn resolve(
        uid: Option<&str>,
        gid: Option<&str>,
        no_initgroups: bool,
    ) -> Result<Identity, CredError> {
        let uid = uid.map(resolve_user).transpose()?;
        let gid = match gid {
            Some(g) => Some(resolve_group(g)?),
            None => uid.as_ref().and_then(|u| u.primary_gid),
        };
        // A uid without a passwd entry has no primary group: as root, switching only the uid
        // would leave the process in group 0.
        if let (Some(u), None) = (&uid, gid) {
            if u.uid != 0 && Uid::effective().is_root() {
                return Err(CredError::NoPrimaryGroup(u.uid));
            }
        }
        Ok(Identity {
            uid,
            gid,
            initgroups: !no_initgroups,
        })
    }
}

/// For `master-as-root`: what a worker must switch to (the supplementary groups resolved
/// now, while /etc is reachable: initgroups' list, or just the gid).
pub fn drop_to_for_workers(id: &Identity) -> Result<liege_config::DropTo, CredError> {
    let groups = match (id.gid, &id.uid, id.initgroups) {
        (
            Some(gid),
            Some(ResolvedUser {
                name: Some(name), ..
            }),
            true,
        ) => {
            let c =
                CString::new(name.as_str()).map_err(|_| CredError::Groups(nix::Error::EINVAL))?;
            nix::unistd::getgrouplist(&c, Gid::from_raw(gid))
                .map_err(CredError::Groups)?
                .into_iter()
                .map(|g| g.as_raw())
                .collect()
        }
        (Some(gid), _, _) => vec![gid],
        (None, _, _) => Vec::new(),
    };
    Ok(liege_config::DropTo {
        uid: id.uid.as_ref().map(|u| u.uid),
        gid: id.gid,
        groups,
    })
}

/// Switch to `to` (a worker under `master-as-root`): groups, gid, uid, then check that
/// setuid(0) fails.
pub fn drop_to(to: &liege_config::DropTo) -> Result<(), CredError> {
    let groups: Vec<Gid> = to.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(CredError::Groups)?;
    if let Some(gid) = to.gid {
        nix::unistd::setgid(Gid::from_raw(gid))
            .map_err(|source| CredError::SetGid { gid, source })?;
    }
    if let Some(uid) = to.uid {
        nix::unistd::setuid(Uid::from_raw(uid))
            .map_err(|source| CredError::SetUid { uid, source })?;
        if uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(CredError::CanRegainRoot);
        }
    }
    Ok(())
}

/// chroot (if asked), then drop to `id` (groups, gid, uid), then check setuid(0) fails.
/// Does nothing about identity when `id.uid`/`id.gid` are both None.
pub fn chroot_and_drop(chroot: Option<&Path>, id: &Identity) -> Result<(), CredError> {
    if let Some(dir) = chroot {
        nix::unistd::chroot(dir).map_err(|source| CredError::Chroot {
            path: dir.display().to_string(),
            source,
        })?;
        nix::unistd::chdir("/").map_err(|source| CredError::Chroot {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let root = Uid::effective().is_root();
    if !root {
        if let Some(u) = &id.uid {
            if u.uid != Uid::effective().as_raw() {
                return Err(CredError::NotRoot {
                    current: Uid::effective().as_raw(),
                    wanted: u.uid,
                });
            }
        }
        return Ok(());
    }
    if let Some(gid) = id.gid {
        let g = Gid::from_raw(gid);
        match (&id.uid, id.initgroups) {
            (
                Some(ResolvedUser {
                    name: Some(name), ..
                }),
                true,
            ) => {
                let c = CString::new(name.as_str())
                    .map_err(|_| CredError::Groups(nix::Error::EINVAL))?;
                nix::unistd::initgroups(&c, g).map_err(CredError::Groups)?;
            }
            _ => nix::unistd::setgroups(&[g]).map_err(CredError::Groups)?,
        }
        nix::unistd::setgid(g).map_err(|source| CredError::SetGid { gid, source })?;
    }
    if let Some(u) = &id.uid {
        if id.gid.is_none() {
            nix::unistd::setgroups(&[]).map_err(CredError::Groups)?;
        }
        nix::unistd::setuid(Uid::from_raw(u.uid))
            .map_err(|source| CredError::SetUid { uid: u.uid, source })?;
        if u.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(CredError::CanRegainRoot);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_numbers() {
        let r = resolve_user("root").unwrap();
        assert_eq!(r.uid, 0);
        assert_eq!(r.primary_gid, Some(0));
        assert_eq!(resolve_user("0").unwrap().name.as_deref(), Some("root"));
        assert_eq!(resolve_user("123456").unwrap().primary_gid, None);
        assert!(resolve_user("no-such-user-liege").is_err());
        assert_eq!(resolve_group("0").unwrap(), 0);
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert_eq!(resolve_owner("root").unwrap(), (Some(0), Some(0)));
        assert_eq!(resolve_owner("0:0").unwrap(), (Some(0), Some(0)));
        let id = Identity::resolve(Some("root"), None, false).unwrap();
        assert_eq!(id.gid, Some(0));
    }
}
