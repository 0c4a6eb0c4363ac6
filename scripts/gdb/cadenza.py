"""gdb helpers for the Cadenza kernel, in the spirit of Linux's scripts/gdb `lx-*` commands.

Load with `source scripts/gdb/cadenza.py` (or see docs/debugging.md for auto-loading). They only
read memory and debug info, so they work the same against the kernel's own stub (kgdboc) and
against QEMU's gdb stub (`-s`):

  cz-dmesg              the kernel log ring
  cz-tasks              tasks: pid, parent, state, name
  cz-vm PID             a task's address space (page-table walk of its ranges)
  cz-heap               kernel heap totals and size classes
  cz-frames             physical frame allocator statistics
  cz-vm [ADDR]          the kernel address space: mapped ranges, or how ADDR translates

Kernel statics are read without taking their locks, as a debugger must (the machine is
stopped, possibly inside the code holding them).
"""

import gdb
import os
import subprocess
import sys


def _load_rust_providers():
    """Rust's own gdb pretty-printers (shipped with every toolchain) know how to walk BTreeMap,
    Vec, String, Arc; reuse them rather than re-deriving std's layouts here."""
    try:
        sysroot = os.environ.get("RUST_SYSROOT") or subprocess.run(
            ["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    etc = os.path.join(sysroot, "lib", "rustlib", "etc")
    if etc not in sys.path:
        sys.path.append(etc)
    try:
        import gdb_lookup
        import gdb_providers

        gdb_lookup.register_printers(gdb.current_progspace())
        return gdb_providers
    except Exception:
        return None


RUST = _load_rust_providers()

PHYS_OFFSET = 0xFFFF_8000_0000_0000
PAGE_FLAGS = [(0, "P"), (1, "W"), (2, "U"), (3, "PWT"), (4, "PCD"), (7, "PS"), (8, "G"), (63, "NX")]
ADDRESS_MASK = 0x000F_FFFF_FFFF_F000


def static(name):
    """The value of a kernel static, by its full Rust path."""
    symbol = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
    if symbol is None:
        raise gdb.GdbError(f"{name} not found: is this a Cadenza kernel with debug info?")
    return symbol.value()


def field_names(value):
    return [f.name for f in value.type.strip_typedefs().fields()]


def unlocked(value):
    """The data inside an IrqSpinLock / spin::Mutex, read without locking."""
    for _ in range(8):
        names = field_names(value)
        if "data" in names and "lock" in names:
            return value["data"]["value"]
        if "inner" in names:
            value = value["inner"]
            continue
        break
    return value


def some(value):
    """The payload of an `Option` known to be `Some` (kernel state set up at boot)."""
    return value["Some"]["__0"]


def read(address, length):
    return bytes(gdb.selected_inferior().read_memory(address, length))


def print_fields(value, indent="  "):
    """Prints the integer fields of a statistics struct, recursing into arrays and structs."""
    kind = value.type.strip_typedefs()
    for field in kind.fields():
        if field.name is None or field.name.startswith("_"):
            continue
        inner = value[field.name]
        inner_kind = inner.type.strip_typedefs()
        if inner_kind.code == gdb.TYPE_CODE_INT or inner_kind.code == gdb.TYPE_CODE_BOOL:
            gdb.write(f"{indent}{field.name:<22} {int(inner)}\n")
        elif inner_kind.code == gdb.TYPE_CODE_ARRAY:
            low, high = inner_kind.range()
            for i in range(low, high + 1):
                element = inner[i]
                if element.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT:
                    parts = []
                    for f in element.type.strip_typedefs().fields():
                        try:
                            parts.append(f"{f.name}={int(element[f.name])}")
                        except gdb.error:
                            pass
                    gdb.write(f"{indent}{field.name}[{i}]  {' '.join(parts)}\n")
        elif inner_kind.code == gdb.TYPE_CODE_STRUCT:
            gdb.write(f"{indent}{field.name}:\n")
            print_fields(inner, indent + "  ")


class Dmesg(gdb.Command):
    """Print the kernel log ring (kernel::console::LOG)."""

    def __init__(self):
        super().__init__("cz-dmesg", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        ring = unlocked(static("kernel::console::LOG"))
        buf = ring["buf"]
        capacity = buf.type.strip_typedefs().sizeof
        written = int(ring["written"])
        held = min(written, capacity)
        start = (written - held) % capacity
        base = int(buf.address)
        first = min(held, capacity - start)
        data = read(base + start, first) + read(base, held - first)
        gdb.write(data.decode("utf-8", "replace"))


def tasks():
    """(pid, Process value) for every task in the scheduler's table."""
    if RUST is None:
        raise gdb.GdbError("cz-tasks needs Rust's gdb providers (rustc --print sysroot)")
    scheduler = unlocked(static("kernel::task::SCHEDULER"))
    result = []
    for pid, boxed in RUST.children_of_btree_map(scheduler["tasks"]):
        process = boxed
        if process.type.strip_typedefs().code == gdb.TYPE_CODE_PTR:
            process = process.dereference()
        else:
            process = RUST.unwrap_unique_or_non_null(process["pointer"] if "pointer" in field_names(process) else process).dereference()
        result.append((int(pid), process))
    return result, int(scheduler["current"])


def rust_string(value):
    text = str(value)
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


class Tasks(gdb.Command):
    """List the kernel's tasks: pid, parent, state, name (the idle context is pid 0)."""

    def __init__(self):
        super().__init__("cz-tasks", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        found, current = tasks()
        gdb.write(f"{'PID':>5} {'PPID':>5} {'TGID':>5} {'STATE':<24} COMMAND\n")
        idle_state = "running" if current == 0 else "idle"
        gdb.write(f"{0:>5} {0:>5} {0:>5} {idle_state:<24} swapper/0\n")
        for pid, process in found:
            state = str(process["state"]).replace("kernel::task::State::", "")
            if pid == current:
                state += " (current)"
            gdb.write(
                f"{pid:>5} {int(process['ppid']):>5} {int(process['tgid']):>5} {state:<24} "
                f"{rust_string(process['name'])}\n"
            )


class Heap(gdb.Command):
    """Show the kernel heap's statistics (kernel::mm::heap::HEAP)."""

    def __init__(self):
        super().__init__("cz-heap", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        inner = unlocked(static("kernel::mm::heap::HEAP")["backend"]["inner"])
        gdb.write("kernel heap:\n")
        print_fields(inner["stats"])


class Frames(gdb.Command):
    """Show the physical frame allocator's state."""

    def __init__(self):
        super().__init__("cz-frames", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        allocator = some(unlocked(static("kernel::mm::frame_allocator::ALLOCATOR")))
        gdb.write("frame allocator:\n")
        print_fields(allocator)


def table(phys):
    """The 512 entries of the page table at `phys`, read through the direct map."""
    data = read(PHYS_OFFSET + phys, 4096)
    return [int.from_bytes(data[i : i + 8], "little") for i in range(0, 4096, 8)]


def flags_text(entry):
    return " ".join(name for bit, name in PAGE_FLAGS if entry & (1 << bit)) or "-"


def canonical(address):
    return address | 0xFFFF_0000_0000_0000 if address & (1 << 47) else address


class Vm(gdb.Command):
    """Decode address spaces: `cz-vm` lists the kernel's mapped ranges, `cz-vm PID` a task's,
    `cz-vm ADDR` walks the page tables for one address."""

    def __init__(self):
        super().__init__("cz-vm", gdb.COMMAND_DATA)

    def root(self):
        space = some(unlocked(static("kernel::mm::paging::KERNEL_SPACE")))
        return int(space["table"]["root"])

    def task_root(self, pid):
        for task_pid, process in tasks()[0]:
            if task_pid == pid:
                arc = process["space"]
                inner = RUST.unwrap_unique_or_non_null(arc["ptr"]).dereference()["data"]
                return int(unlocked(inner)["table"]["root"])
        raise gdb.GdbError(f"no task {pid}")

    def invoke(self, argument, from_tty):
        words = argument.split()
        if len(words) == 1 and words[0].isdigit() and int(words[0]) < 1 << 22:
            # A pid: that task's address space (user half and the shared kernel half).
            self.ranges(self.task_root(int(words[0])))
            return
        root = self.root()
        if words:
            self.walk(root, int(gdb.parse_and_eval(argument)) & 0xFFFF_FFFF_FFFF_FFFF)
        else:
            self.ranges(root)

    def walk(self, root, virt):
        current = root
        for level, name in [(4, "PML4"), (3, "PDPT"), (2, "PD"), (1, "PT")]:
            index = (virt >> (12 + 9 * (level - 1))) & 0x1FF
            entry = table(current)[index]
            gdb.write(f"{name:<4} [{index:3}] = {entry:#018x}  {flags_text(entry)}\n")
            if not entry & 1:
                gdb.write(f"{virt:#x} is not mapped\n")
                return
            if level == 1 or (level <= 3 and entry & (1 << 7)):
                page = 1 << (12 + 9 * (level - 1))
                phys = (entry & ADDRESS_MASK & ~(page - 1)) | (virt & (page - 1))
                gdb.write(f"{virt:#x} -> phys {phys:#x} ({page // 1024} KiB page)\n")
                return
            current = entry & ADDRESS_MASK

    def ranges(self, root):
        runs = []

        def visit(phys, level, base):
            for index, entry in enumerate(table(phys)):
                if not entry & 1:
                    continue
                virt = base | (index << (12 + 9 * (level - 1)))
                leaf = level == 1 or (level <= 3 and entry & (1 << 7))
                if not leaf:
                    visit(entry & ADDRESS_MASK, level - 1, virt)
                    continue
                size = 1 << (12 + 9 * (level - 1))
                target = entry & ADDRESS_MASK & ~(size - 1)
                flags = entry & ((1 << 63) | 0x1F | (1 << 8))
                if runs and runs[-1][1] == virt and runs[-1][3] == flags and runs[-1][2] + (runs[-1][1] - runs[-1][0]) == target:
                    runs[-1][1] = virt + size
                else:
                    runs.append([virt, virt + size, target, flags])

        visit(root, 4, 0)
        gdb.write(f"{'virtual start':>18} {'virtual end':>18} {'physical':>12} {'size':>10}  flags\n")
        for start, end, phys, flags in runs:
            size = end - start
            human = f"{size // (1 << 20)}M" if size >= 1 << 20 else f"{size // 1024}K"
            gdb.write(f"{canonical(start):#18x} {canonical(end):#18x} {phys:#12x} {human:>10}  {flags_text(flags)}\n")


Dmesg()
Tasks()
Heap()
Frames()
Vm()
