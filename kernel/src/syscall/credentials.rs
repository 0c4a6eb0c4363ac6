//! User and group ids: the `get*id`/`set*id` family and supplementary groups, over
//! `task::identity` (which holds Linux's rules).

use alloc::vec::Vec;

use super::Call;
use crate::errno::{EResult, Errno};
use crate::mm::user::UserSlice;
use crate::task::identity::{Identity, MAX_GROUPS, optional_id};
use crate::task::{self};

fn identity() -> EResult<Identity> {
    task::with_current(|p| p.identity.clone())
}

/// Applies a change to the caller's ids; one that moves its effective or file-system ids makes
/// it undumpable, as Linux's `commit_creds` does (`Identity::change_clears_dumpable`).
fn change(f: impl FnOnce(&mut Identity) -> EResult<()>) -> EResult<u64> {
    task::with_current(|p| {
        let before = p.identity.clone();
        f(&mut p.identity)?;
        if before.change_clears_dumpable(&p.identity) {
            p.dumpable = false;
        }
        Ok::<(), Errno>(())
    })??;
    Ok(0)
}

/// A single id argument: `-1` is not an id (`EINVAL`).
fn required_id(raw: u64) -> EResult<u32> {
    optional_id(raw).ok_or(Errno::EINVAL)
}

pub fn getuid(_: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(identity()?.uid.real))
}

pub fn geteuid(_: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(identity()?.uid.effective))
}

pub fn getgid(_: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(identity()?.gid.real))
}

pub fn getegid(_: &mut Call<'_>) -> EResult<u64> {
    Ok(u64::from(identity()?.gid.effective))
}

pub fn setuid(call: &mut Call<'_>) -> EResult<u64> {
    let uid = required_id(call.args.0[0])?;
    change(|id| id.set_uid(uid))
}

pub fn setgid(call: &mut Call<'_>) -> EResult<u64> {
    let gid = required_id(call.args.0[0])?;
    change(|id| id.set_gid(gid))
}

pub fn setreuid(call: &mut Call<'_>) -> EResult<u64> {
    let [real, effective, ..] = call.args.0;
    change(|id| id.set_reuid(optional_id(real), optional_id(effective)))
}

pub fn setregid(call: &mut Call<'_>) -> EResult<u64> {
    let [real, effective, ..] = call.args.0;
    change(|id| id.set_regid(optional_id(real), optional_id(effective)))
}

pub fn setresuid(call: &mut Call<'_>) -> EResult<u64> {
    let [r, e, s, ..] = call.args.0;
    change(|id| id.set_resuid([optional_id(r), optional_id(e), optional_id(s)]))
}

pub fn setresgid(call: &mut Call<'_>) -> EResult<u64> {
    let [r, e, s, ..] = call.args.0;
    change(|id| id.set_resgid([optional_id(r), optional_id(e), optional_id(s)]))
}

/// Writes three ids to three user pointers (`getresuid`/`getresgid`).
fn write_three(pointers: [u64; 3], ids: [u32; 3]) -> EResult<u64> {
    for (address, id) in pointers.into_iter().zip(ids) {
        let target = UserSlice::new(address, 4)?;
        task::with_current(|p| p.space.lock().write(target, &id.to_le_bytes()))??;
    }
    Ok(0)
}

pub fn getresuid(call: &mut Call<'_>) -> EResult<u64> {
    let [r, e, s, ..] = call.args.0;
    let uid = identity()?.uid;
    write_three([r, e, s], [uid.real, uid.effective, uid.saved])
}

pub fn getresgid(call: &mut Call<'_>) -> EResult<u64> {
    let [r, e, s, ..] = call.args.0;
    let gid = identity()?.gid;
    write_three([r, e, s], [gid.real, gid.effective, gid.saved])
}

/// `getgroups(size, list)`: size 0 asks for the count; a smaller list is `EINVAL`.
pub fn getgroups(call: &mut Call<'_>) -> EResult<u64> {
    let [size, list, ..] = call.args.0;
    let groups = identity()?.groups;
    let size = size as i32;
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    if !bytes.is_empty() {
        let target = UserSlice::new(list, bytes.len())?;
        task::with_current(|p| p.space.lock().write(target, &bytes))??;
    }
    Ok(groups.len() as u64)
}

/// `setgroups(size, list)`: root only; at most `NGROUPS_MAX`.
pub fn setgroups(call: &mut Call<'_>) -> EResult<u64> {
    let [size, list, ..] = call.args.0;
    let size = usize::try_from(size as i32).map_err(|_| Errno::EINVAL)?;
    if size > MAX_GROUPS {
        return Err(Errno::EINVAL);
    }
    let mut bytes = crate::mm::fallible::try_vec_zeroed(size * 4)?;
    if size > 0 {
        let source = UserSlice::new(list, bytes.len())?;
        task::with_current(|p| p.space.lock().read(source, &mut bytes))??;
    }
    let mut groups: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    groups.sort_unstable();
    change(|id| id.set_groups(groups))
}
