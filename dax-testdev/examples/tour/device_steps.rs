//! Steps 1-3 and 9, on a scratch device: direct access, poison, recovery, death.

use super::*;

/// Step 1: `dax_direct_access` and copies through the address it answers.
pub(crate) fn direct_access(
    r: &mut Report<'_>,
    dev: &DaxDevice<MemDevice>,
) -> Result<String, TourError> {
    let section = dev.read_lock();
    let da = section
        .direct_access(16, 4, DaxAccessMode::Access)
        .ctx("direct_access")?;
    r.line(
        "asked for",
        "4 pages from device page 16 (dax_direct_access)",
    )?;
    r.line(
        "got",
        format!(
            "{} pages at address {:p}, pfn {:#x}",
            da.pages(),
            da.as_ptr(),
            da.pfn().0
        ),
    )?;
    let msg = b"hello, direct access";
    let n = da.copy_from(0, msg);
    let mut back = [0u8; 20];
    da.copy_to(0, &mut back);
    r.line(
        "copied in",
        format!("{n} bytes with stores that bypass the CPU cache"),
    )?;
    r.line("read back", quoted(&back))?;
    if &back != msg {
        r.failed("the bytes read back differ from the bytes written".to_owned())?;
    }
    Ok(format!(
        "{} pages at pfn {:#x}, {n} bytes written and read back",
        da.pages(),
        da.pfn().0
    ))
}

/// Step 2: poison in page 18, as each path sees it.
pub(crate) fn poison(r: &mut Report<'_>, dev: &DaxDevice<MemDevice>) -> Result<String, TourError> {
    let bad = 18 * K + 1024;
    dev.driver().poison(bad, 512).ctx("injecting poison")?;
    r.line(
        "injected",
        format!("512 bytes of poison at device byte {bad} (page 18, byte 1024)"),
    )?;
    for rec in dev.driver().badblocks().records() {
        r.line(
            "badblocks",
            format!(
                "sector {}, {} ({})",
                rec.start,
                sectors_text(rec.len),
                size_text(rec.len * SECTOR_SIZE as u64)
            ),
        )?;
    }
    let section = dev.read_lock();
    let mut seen = Vec::new();
    match section.direct_access(16, 4, DaxAccessMode::Access) {
        Err(e) => {
            r.line(
                "direct access",
                format!("of pages 16..20 refused: {}", errno_text(&e)),
            )?;
            seen.extend(e.errno_name());
        }
        Ok(_) => r.failed("direct access over the poisoned page succeeded".to_owned())?,
    }
    let rec = section
        .direct_access(16, 4, DaxAccessMode::RecoveryWrite)
        .ctx("direct_access in recovery-write mode")?;
    r.line(
        "recovery mode",
        format!(
            "direct access answers {} pages: up to and including the bad one",
            rec.pages()
        ),
    )?;
    let mut buf = vec![0u8; PAGE_SIZE];
    let n = rec.copy_to(2 * PAGE_SIZE, &mut buf);
    r.line(
        "safe read",
        format!("of page 18 stopped after {n} bytes, where the poison starts"),
    )?;
    let mut block = vec![0u8; 512];
    match dev.driver().read(bad, &mut block) {
        Err(e) => {
            r.line(
                "block read",
                format!("of the bad sector failed: {}", errno_text(&e)),
            )?;
            seen.extend(e.errno_name());
        }
        Ok(()) => r.failed("a block read of the bad sector succeeded".to_owned())?,
    }
    let wrote = rec.recovery_write(2 * PAGE_SIZE + 100, &[1; 100]);
    if wrote == 0 {
        r.line(
            "small rewrite",
            "recovery_write of 100 bytes inside page 18 wrote nothing:\n\
             poison is cleared only by rewriting whole aligned sectors",
        )?;
    } else {
        r.failed(format!(
            "an unaligned recovery_write of 100 bytes wrote {wrote} bytes over poison"
        ))?;
    }
    Ok(format!(
        "seen as {} by direct access and the block path",
        seen.join(" and ")
    ))
}

/// Step 3: the two ways a driver clears poison: zeroing and a recovery write.
pub(crate) fn recovery(
    r: &mut Report<'_>,
    dev: &DaxDevice<MemDevice>,
) -> Result<String, TourError> {
    let clears = dev.driver().calls(DevOp::ClearPoison);
    dev.zero_page_range(18, 1)
        .ctx("zero_page_range of page 18")?;
    let asked = dev.driver().calls(DevOp::ClearPoison) - clears;
    let ok = dev.driver().badblocks().is_empty() && !dev.driver().is_poisoned(18 * K, K);
    r.line(
        "zero page 18",
        format!(
            "zeroed 4 KiB, asking the firmware to clear poison {}; {}",
            if asked == 1 {
                "once".to_owned()
            } else {
                format!("{asked} times")
            },
            if ok {
                "poison cleared"
            } else {
                "poison still there"
            }
        ),
    )?;
    if !ok {
        r.failed("zero_page_range left the poison".to_owned())?;
    }
    let records = dev.driver().badblocks().count();
    r.line(
        "badblocks",
        if records == 0 {
            "empty".to_owned()
        } else {
            format!("{records} record(s) left")
        },
    )?;
    {
        let section = dev.read_lock();
        let da = section
            .direct_access(16, 4, DaxAccessMode::Access)
            .ctx("direct_access after the clear")?;
        r.line(
            "direct access",
            format!("of pages 16..20 works again: {} pages", da.pages()),
        )?;
    }
    // Poison again, in page 19, and rewrite the whole page through recovery_write.
    dev.driver()
        .poison(19 * K + 2048, 512)
        .ctx("injecting poison")?;
    let section = dev.read_lock();
    let rec = section
        .direct_access(19, 1, DaxAccessMode::RecoveryWrite)
        .ctx("direct_access in recovery-write mode")?;
    let wrote = rec.recovery_write(0, &[b'R'; PAGE_SIZE]);
    drop(section);
    let cleared = dev.driver().badblocks().is_empty() && !dev.driver().is_poisoned(19 * K, K);
    let text = if wrote == PAGE_SIZE && cleared {
        format!("rewrote {}, poison cleared", size_text(wrote as u64))
    } else {
        format!("wrote {wrote} bytes, poison still there")
    };
    r.line(
        "rewrite page 19",
        format!("poisoned it, then recovery_write of the whole page: {text}"),
    )?;
    if wrote != PAGE_SIZE || !cleared {
        r.failed("recovery_write of a whole page did not clear its poison".to_owned())?;
    }
    Ok("poison cleared by zeroing and by a recovery write".to_owned())
}

/// Step 9: `kill_dax`: waits for readers, then every access answers ENXIO.
pub(crate) fn death(r: &mut Report<'_>, dev: &DaxDevice<MemDevice>) -> Result<String, TourError> {
    dev.kill();
    r.line("killed", "kill waited for readers in their read sections")?;
    match dev.read_lock().direct_access(0, 1, DaxAccessMode::Access) {
        Err(e) => {
            r.line("direct access", format!("now fails: {}", errno_text(&e)))?;
            Ok(format!(
                "direct access fails with {}",
                e.errno_name().unwrap_or("an error")
            ))
        }
        Ok(_) => {
            r.failed("direct access on a killed device succeeded".to_owned())?;
            Ok("direct access still worked".to_owned())
        }
    }
}
