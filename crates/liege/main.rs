//! The `liege` binary: reads the command line and dispatches to one process role.
//! It contains no logic beyond that dispatch (docs/architecture.md).

use liege_config::{Action, WorkerBoot, WORKER_BOOT_ENV};
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The worker role: exec'd by a master with its boot record in the environment.
    if let Some(boot) = std::env::var_os(WORKER_BOOT_ENV) {
        std::env::remove_var(WORKER_BOOT_ENV);
        let boot: WorkerBoot = match serde_json::from_slice(boot.as_encoded_bytes()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("liege: invalid {WORKER_BOOT_ENV}: {e}");
                return ExitCode::from(1);
            }
        };
        return exit(liege_worker::run(boot));
    }

    liege_config::preflight::set_embedded_python(
        liege_worker::PYTHON_SHORT,
        liege_worker::PYTHON_EXECUTABLE,
    );
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    match liege_config::parse_command_line(&args, &env) {
        Ok(Action::Run(settings)) => {
            if settings.emperor.is_some() {
                exit(liege_emperor::run(*settings))
            } else {
                exit(liege_master::run(*settings))
            }
        }
        Ok(Action::Check(text)) | Ok(Action::Help(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Action::Usage(text)) => {
            eprint!("{text}");
            ExitCode::from(2)
        }
        Ok(Action::Version) => {
            println!("liege {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Action::Reload(pidfile)) => signal(&pidfile, liege_sys::Signal::SIGHUP),
        Ok(Action::Stop(pidfile)) => signal(&pidfile, liege_sys::Signal::SIGINT),
        Ok(Action::Status(addr)) => exit(liege_emperor::status(&addr)),
        Err(errors) => {
            for e in &errors {
                eprintln!("liege: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn signal(pidfile: &std::path::Path, sig: liege_sys::Signal) -> ExitCode {
    match liege_sys::signal_pidfile(pidfile, sig) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("liege: {e}");
            ExitCode::from(1)
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
