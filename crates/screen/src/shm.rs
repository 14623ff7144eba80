//! A SysV shared memory segment the X server writes captured pixels into (MIT-SHM), so a
//! 1920x1080 frame is not copied through the X socket.

use std::ptr::NonNull;

/// A private segment, attached to this process, marked for removal once detached.
pub(crate) struct Segment {
    id: i32,
    addr: NonNull<u8>,
    len: usize,
}

// The segment is plain memory owned by this value; nothing else in the process aliases it.
unsafe impl Send for Segment {}

impl Segment {
    pub(crate) fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: shmget has no memory-safety preconditions; the result is checked.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `id` is a segment just made; a null address lets the kernel choose.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if addr as isize == -1 {
            let error = std::io::Error::last_os_error();
            // SAFETY: removing the segment we made; it was never attached.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(error);
        }
        let Some(addr) = NonNull::new(addr.cast::<u8>()) else {
            return Err(std::io::Error::other("shmat returned null"));
        };
        Ok(Self { id, addr, len })
    }

    pub(crate) fn id(&self) -> u32 {
        self.id as u32
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Marks the segment for removal: it goes when the last attachment (ours, the X
    /// server's) is gone, so a crash leaves nothing behind. Call after the server attached.
    pub(crate) fn mark_for_removal(&self) {
        // SAFETY: `id` is our segment; IPC_RMID takes no buffer.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }

    /// The first `len` bytes (what the server last wrote).
    pub(crate) fn bytes(&self, len: usize) -> &[u8] {
        let len = len.min(self.len);
        // SAFETY: the mapping is `self.len` bytes long and lives as long as `self`; the X
        // server writes it only during a request we wait for, so no write races this read.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr(), len) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: detaching the address shmat gave us; nothing borrows it past `self`.
        unsafe {
            libc::shmdt(self.addr.as_ptr().cast());
            libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}
