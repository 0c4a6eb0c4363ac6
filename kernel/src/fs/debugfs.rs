//! debugfs: where kernel subsystems put their debugging controls, mounted as Linux's is
//! (`mount -t debugfs none /sys/kernel/debug`).
//!
//! Files are declared in one table (`FILES`) by the subsystem that owns them; each is a text
//! generator plus, for a control file, a command handler. The first user is the leak tracker's
//! `kmemleak`, so the habits and scripts people have from Linux work unchanged.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::inode::{FileSystem, Inode};
use super::metadata::DeviceId;
use super::pseudo::{Attributes, FixedContents, GeneratedDir, GeneratedFile};
use super::tmpfs::anonymous_device;
use crate::errno::EResult;

type ShowFn = fn(&mut String) -> EResult<()>;
type StoreFn = fn(&[u8]) -> EResult<usize>;

/// A debugfs file: name, permissions, what a read shows, what a write does.
struct DebugFile {
    name: &'static str,
    permissions: u32,
    show: ShowFn,
    store: Option<StoreFn>,
}

const FILES: &[DebugFile] = &[
    DebugFile {
        name: "kmemleak",
        permissions: 0o644,
        show: crate::mm::leak::debugfs::show,
        store: Some(crate::mm::leak::debugfs::store),
    },
    DebugFile {
        name: "kmemleak_since_mark",
        permissions: 0o444,
        show: crate::mm::leak::debugfs::show_since_mark,
        store: None,
    },
];

pub struct Debugfs {
    device: DeviceId,
    root: Arc<GeneratedDir>,
}

impl Debugfs {
    pub fn new() -> Arc<Self> {
        let device = anonymous_device();
        let files: Vec<(&'static str, Arc<dyn Inode>)> = FILES
            .iter()
            .enumerate()
            .map(|(index, file)| {
                let attributes = Attributes::root(device, index as u64 + 2, file.permissions);
                let inode: Arc<dyn Inode> = match file.store {
                    Some(store) => {
                        GeneratedFile::with_store(attributes, Box::new(file.show), Box::new(store))
                    }
                    None => GeneratedFile::new(attributes, Box::new(file.show)),
                };
                (file.name, inode)
            })
            .collect();
        // Linux makes the debugfs root 0700: debugging controls are root's.
        let root = GeneratedDir::new_root(
            Attributes::root(device, 1, 0o700),
            Box::new(FixedContents(files)),
        );
        Arc::new(Self { device, root })
    }
}

impl FileSystem for Debugfs {
    fn type_name(&self) -> &'static str {
        "debugfs"
    }

    fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }

    fn device(&self) -> DeviceId {
        self.device
    }
}
