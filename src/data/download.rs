//! Optional download of the dataset files, verified by MD5, with a progress bar.
//!
//! Each file is streamed into `NAME.<pid>.part` in the destination directory while its MD5 is
//! computed, and renamed to `NAME` only when the checksum matches; on any failure the partial file
//! is deleted and the next mirror is tried. A finished download is therefore always complete and
//! verified, and nothing partial or corrupt is ever left behind.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

use crate::error::{Error, Result};

/// A file to download: its name on the mirrors and in the destination, and its published MD5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    pub name: &'static str,
    /// Lowercase or uppercase hex.
    pub md5: &'static str,
}

/// The four MNIST files, with the MD5s the mirrors publish.
pub const MNIST_FILES: [Remote; 4] = [
    Remote {
        name: "train-images-idx3-ubyte.gz",
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    Remote {
        name: "train-labels-idx1-ubyte.gz",
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
    },
    Remote {
        name: "t10k-images-idx3-ubyte.gz",
        md5: "9fb629c4189551a2d022fa330f9573f3",
    },
    Remote {
        name: "t10k-labels-idx1-ubyte.gz",
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
    },
];

/// The four Fashion-MNIST files, with the MD5s published by Zalando Research.
pub const FASHION_FILES: [Remote; 4] = [
    Remote {
        name: "train-images-idx3-ubyte.gz",
        md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    },
    Remote {
        name: "train-labels-idx1-ubyte.gz",
        md5: "25c81989df183df01b3e8a0aad5dffbe",
    },
    Remote {
        name: "t10k-images-idx3-ubyte.gz",
        md5: "bef4ecab320f06d8554ea6380940ec79",
    },
    Remote {
        name: "t10k-labels-idx1-ubyte.gz",
        md5: "bb300cfdad3c16e7a12a480ee83fd310",
    },
];

/// MNIST mirrors, tried in order.
pub const MNIST_MIRRORS: &[&str] = &[
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
];

/// Fashion-MNIST mirrors, tried in order.
pub const FASHION_MIRRORS: &[&str] =
    &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// How long to wait for a connection, and for each read once connected.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads every file of `files` that is not already in `dir` (creating `dir` if needed), trying
/// `mirrors` in order for each. A file is kept only when its MD5 matches; when every mirror fails
/// for a file, the error names each URL tried and why it failed.
pub fn fetch(mirrors: &[&str], dir: &Path, files: &[Remote]) -> Result<()> {
    let missing: Vec<&Remote> = files
        .iter()
        .filter(|f| !dir.join(f.name).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if mirrors.is_empty() {
        return Err(Error::Download {
            url: missing[0].name.to_string(),
            reason: "no mirror to download from".into(),
        });
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating the download directory", e))?;
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(READ_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    for remote in missing {
        let mut urls = Vec::new();
        let mut failures = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), remote.name);
            match fetch_one(&agent, &url, dir, remote) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(why) => {
                    eprintln!("soma: download of {url} failed: {why}");
                    failures.push(format!("{url}: {why}"));
                    urls.push(url);
                }
            }
        }
        if !done {
            return Err(Error::Download {
                url: urls.join(", "),
                reason: failures.join("; "),
            });
        }
    }
    Ok(())
}

/// Deletes the partial file unless the download succeeded.
struct PartGuard(Option<PathBuf>);

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Downloads one URL into `dir/remote.name`, verifying its MD5; the error is a reason to report.
fn fetch_one(agent: &ureq::Agent, url: &str, dir: &Path, remote: &Remote) -> Result<(), String> {
    let dest = dir.join(remote.name);
    let part = dir.join(format!("{}.{}.part", remote.name, std::process::id()));
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let length = response.body().content_length();
    let mut reader = response.into_body().into_reader();

    let mut guard = PartGuard(Some(part.clone()));
    let mut file = File::create(&part).map_err(|e| format!("creating {}: {e}", part.display()))?;
    let bar = match length {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(remote.name);

    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(format!("reading the response after {total} bytes: {e}"));
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("writing {}: {e}", part.display()))?;
        total += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    file.sync_all()
        .map_err(|e| format!("writing {}: {e}", part.display()))?;
    drop(file);

    let got = hex(&hasher.finalize());
    if !got.eq_ignore_ascii_case(remote.md5) {
        return Err(format!(
            "md5 mismatch: expected {}, got {got} ({total} bytes)",
            remote.md5
        ));
    }
    fs::rename(&part, &dest)
        .map_err(|e| format!("renaming {} to {}: {e}", part.display(), dest.display()))?;
    guard.0 = None;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
