//! debugfs: where kernel subsystems put their debugging controls, mounted as Linux's is
//! (`mount -t debugfs none /sys/kernel/debug`).
//!
//! Files are declared in one table (`FILES`) by the subsystem that owns them; each is a text
//! generator plus, for a control file, a command handler. The first user is the leak tracker's
//! `kmemleak`, so the habits and scripts people have from Linux work unchanged.
//!
//! Fault injection's directories (`failslab/`, `fail_page_alloc/`; see `mm::fault_inject`) hold
//! one file per attribute, as Linux's: `probability`, `interval`, `times`, `space`, `verbose`,
//! plus Cadenza's read-only `injected` (failures forced so far).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::inode::{FileSystem, Inode};
use super::metadata::DeviceId;
use super::pseudo::{Attributes, Contents, Entry, FixedContents, GeneratedDir, GeneratedFile};
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

/// The root's entries: the `FILES` table, then the fault-injection directories. Those are made
/// when listed or looked up, with the root passed in as their parent: holding them here would
/// make a reference cycle (root -> directory -> `..`) that outlives an unmount.
struct RootContents {
    device: DeviceId,
    files: FixedContents,
}

impl Contents for RootContents {
    fn entries(&self, dir: &Arc<dyn Inode>) -> Vec<Entry> {
        let mut entries = self.files.entries(dir);
        let first = entries.len() as u64 + 2;
        let attrs = [
            &crate::mm::fault_inject::FAILSLAB,
            &crate::mm::fault_inject::FAIL_PAGE_ALLOC,
        ];
        for (cookie, attr) in (first..).zip(attrs) {
            entries.push(Entry {
                cookie,
                name: String::from(attr.name),
                inode: fault_attr_dir(self.device, 16 * cookie, dir.clone(), attr),
            });
        }
        entries
    }
}

/// `/sys/kernel/debug/<attr>/`: one file per knob of a fault-injection attribute.
fn fault_attr_dir(
    device: DeviceId,
    first_ino: u64,
    parent: Arc<dyn Inode>,
    attr: &'static crate::mm::fault_inject::FaultAttr,
) -> Arc<dyn Inode> {
    use crate::mm::fault_inject::{Knob, show, store};
    let files: Vec<(&'static str, Arc<dyn Inode>)> = Knob::ALL
        .iter()
        .enumerate()
        .map(|(index, &(name, knob))| {
            let ino = first_ino + 1 + index as u64;
            let inode: Arc<dyn Inode> = match knob {
                Knob::Injected => GeneratedFile::new(
                    Attributes::root(device, ino, 0o444),
                    Box::new(move |out: &mut String| show(attr, knob, out)),
                ),
                _ => GeneratedFile::with_store(
                    Attributes::root(device, ino, 0o600),
                    Box::new(move |out: &mut String| show(attr, knob, out)),
                    Box::new(move |data: &[u8]| store(attr, knob, data)),
                ),
            };
            (name, inode)
        })
        .collect();
    GeneratedDir::new(
        Attributes::root(device, first_ino, 0o700),
        parent,
        Box::new(FixedContents(files)),
    )
}

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
            Box::new(RootContents {
                device,
                files: FixedContents(files),
            }),
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
