//! Serves a media-factory pipeline description from `pipelines/` (a launch line in parentheses
//! whose payloader is named `pay0`) as an RTSP stream, with the yoloanonymize element built in.
//!
//! ```sh
//! cargo run --release --example rtsp-serve -- pipelines/rtsp-to-rtsp.pipeline URL=rtsp://192.168.1.20:554/stream
//! # serving rtsp://127.0.0.1:8554/anonymized
//! gst-play-1.0 rtsp://127.0.0.1:8554/anonymized
//!
//! # Other machines too, for viewers who know the password (first line of the file):
//! cargo run --release --example rtsp-serve -- --address 0.0.0.0 --user viewer --password-file viewer.pw \
//!     pipelines/rtsp-to-rtsp.pipeline URL=rtsp://192.168.1.20:554/stream
//! gst-play-1.0 rtsp://viewer:PASSWORD@192.168.1.10:8554/anonymized
//! ```
//!
//! Options: `--port N` (default 8554), `--address A` (default 127.0.0.1: this machine only;
//! `0.0.0.0` for every interface), `--mount /path` (default `/anonymized`), `--user NAME` with
//! `--password-file FILE` (both or neither): RTSP basic authentication through gst-rtsp-server's
//! `RTSPAuth`, a client without these credentials gets `401 Unauthorized`. Basic authentication
//! sends the password unencrypted: use it on networks you trust, or behind a TLS tunnel. Each
//! `NAME=VALUE` fills a `${NAME}` placeholder of the file; lines starting with `#` are comments.
//! The factory is shared: every viewer gets the same stream, anonymized once; the camera is
//! opened when the first viewer connects and closed when the last one leaves. Credentials in
//! URLs are masked in what this program prints. Set `GST_DEBUG=rtsp*:4,yoloanonymize:4` to see
//! what happens.

use std::process::ExitCode;

use gst::glib;
use gst_rtsp_server::prelude::*;
use gstyoloanonymize::uri::mask_credentials;

const USAGE: &str = "usage: rtsp-serve [--port N] [--address A] [--mount /path] [--user NAME --password-file FILE] FILE.pipeline [NAME=VALUE]...";

/// The role of the authenticated viewers in the factory's permissions.
const VIEWER_ROLE: &str = "viewer";

struct Args {
    file: String,
    values: Vec<(String, String)>,
    port: u16,
    address: String,
    mount: String,
    /// `--user` and the password read from `--password-file`.
    credentials: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut file, mut values) = (None, Vec::new());
    let (mut port, mut address, mut mount) =
        (8554, "127.0.0.1".to_string(), "/anonymized".to_string());
    let (mut user, mut password_file) = (None, None);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--port" => {
                let v = value("--port")?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port: '{v}' is not a port number"))?;
            }
            "--address" => address = value("--address")?,
            "--mount" => mount = value("--mount")?,
            "--user" => user = Some(value("--user")?),
            "--password-file" => password_file = Some(value("--password-file")?),
            "-h" | "--help" => return Err(USAGE.into()),
            _ if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ => match a.split_once('=') {
                Some((k, v)) if file.is_some() => values.push((k.to_string(), v.to_string())),
                _ if file.is_none() => file = Some(a),
                _ => return Err(format!("expected NAME=VALUE, got '{a}'")),
            },
        }
    }
    if !mount.starts_with('/') {
        return Err(format!("--mount must start with '/', got '{mount}'"));
    }
    let credentials = match (user, password_file) {
        (None, None) => None,
        (Some(user), Some(file)) => Some((user, read_password(&file)?)),
        (Some(_), None) => return Err("--user needs --password-file".into()),
        (None, Some(_)) => return Err("--password-file needs --user".into()),
    };
    Ok(Args {
        file: file.ok_or(USAGE)?,
        values,
        port,
        address,
        mount,
        credentials,
    })
}

/// The password: the first line of `file`, without its line ending.
fn read_password(file: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("--password-file: cannot read {file}: {e}"))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(format!(
            "--password-file: {file} is empty; put the password on its first line"
        ));
    }
    Ok(password)
}

/// Basic authentication: `user` with `password` may see and construct the factory's media; any
/// other client gets 401.
fn require_credentials(
    server: &gst_rtsp_server::RTSPServer,
    factory: &gst_rtsp_server::RTSPMediaFactory,
    (user, password): &(String, String),
) {
    let auth = gst_rtsp_server::RTSPAuth::new();
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
        .build();
    let basic = gst_rtsp_server::RTSPAuth::make_basic(user, password);
    auth.add_basic(basic.as_str(), &token);
    server.set_auth(Some(&auth));
    factory.add_role_from_structure(
        &gst::Structure::builder(VIEWER_ROLE)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
}

/// The launch line: the file without its comment lines, placeholders filled in.
fn launch_line(args: &Args) -> Result<String, String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file))?;
    let mut desc = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    for (name, value) in &args.values {
        let placeholder = format!("${{{name}}}");
        if !desc.contains(&placeholder) {
            return Err(format!("{} has no {placeholder} placeholder", args.file));
        }
        desc = desc.replace(&placeholder, value);
    }
    if let Some(start) = desc.find("${") {
        let name: String = desc[start..].chars().take_while(|&c| c != '}').collect();
        return Err(format!(
            "{}: give a value for {name}}} (as NAME=VALUE)",
            args.file
        ));
    }
    let desc = desc.trim().to_string();
    if !desc.starts_with('(') || !desc.contains("name=pay0") {
        return Err(format!(
            "{} is not a media-factory launch line: it must be in parentheses and name its payloader pay0 (run plain pipelines with pipelines/run.sh)",
            args.file
        ));
    }
    Ok(desc)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let launch = launch_line(&args)?;
    gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
    // The element is built into this program: no GST_PLUGIN_PATH needed.
    gstyoloanonymize::plugin_register_static()
        .map_err(|e| format!("cannot register yoloanonymize: {e}"))?;
    // Fail now, with the reason, rather than when the first viewer connects.
    gst::parse::launch(&launch).map_err(|e| format!("{}: {e}", args.file))?;

    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address(&args.address);
    server.set_service(&args.port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    factory.set_shared(true);
    match &args.credentials {
        Some(credentials) => require_credentials(&server, &factory, credentials),
        None if !is_loopback(&args.address) => eprintln!(
            "rtsp-serve: warning: serving on {} without authentication: anyone who can reach it can watch (see --user and --password-file)",
            args.address
        ),
        None => {}
    }
    server
        .mount_points()
        .ok_or("the RTSP server has no mount points")?
        .add_factory(&args.mount, factory);
    server
        .attach(None)
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.address, args.port))?;
    println!(
        "serving rtsp://{}:{}{} ({}{})",
        args.address,
        server.bound_port(),
        args.mount,
        args.file,
        if args.credentials.is_some() {
            ", basic authentication"
        } else {
            ""
        }
    );
    glib::MainLoop::new(None, false).run();
    Ok(())
}

/// Whether `address` is this machine only (`127.x.x.x`, `::1`, `localhost`).
fn is_loopback(address: &str) -> bool {
    address == "localhost"
        || address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtsp-serve: {}", mask_credentials(&e));
            ExitCode::FAILURE
        }
    }
}
