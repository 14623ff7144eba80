//! A window that draws the fake camera's test pattern (colour bars, a moving square, the
//! wall-clock time code along the bottom) at 30 fps: something known to share in tests and
//! benchmarks, whose time code tells how late a shared frame is painted elsewhere.
//!
//! `confab-pattern-window [--title T] [--size WxH] [--seconds N]`. It prints `window 0x…`
//! once shown, and exits after N seconds (default 600), when killed, or when its window is
//! closed.

use std::time::Duration;

use confab_screen::pattern_window::PatternWindow;

struct Options {
    title: String,
    width: u16,
    height: u16,
    seconds: u64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        title: "Confab test pattern".into(),
        width: 1280,
        height: 720,
        seconds: 600,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--title" => options.title = value()?,
            "--size" => {
                let v = value()?;
                let (w, h) = v
                    .split_once('x')
                    .ok_or(format!("--size takes WxH, not {v}"))?;
                options.width = w.parse().map_err(|_| format!("bad width in {v}"))?;
                options.height = h.parse().map_err(|_| format!("bad height in {v}"))?;
                if options.width < 64 || options.height < 64 {
                    return Err("the window is at least 64x64".into());
                }
            }
            "--seconds" => {
                let v = value()?;
                options.seconds = v.parse().map_err(|_| format!("bad --seconds {v}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("confab-pattern-window: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("confab-pattern-window: {e}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let window = PatternWindow::open(
        &options.title,
        options.width,
        options.height,
        Duration::from_secs(options.seconds),
    )?;
    println!("window {:#x}", window.window);
    window.wait();
    Ok(())
}
