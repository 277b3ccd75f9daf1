//! Debian's nginx as the load balancer in front of one or more Tasky processes, started on a loopback port.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx in front of `upstreams` (round robin), appending to `X-Forwarded-For` and setting `X-Real-IP`, as in its
/// documented reverse-proxy setup. A connection an upstream refuses is passed to the next one, nginx's default.
/// `None` (with a line saying so) where nginx is not installed, unless `TASKY_REQUIRE_NGINX` is set, as
/// `.ci/run` does after installing it.
pub struct Nginx {
    child: Child,
    pub address: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(upstreams: &[&str]) -> Option<Self> {
        let Some(binary) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            assert!(
                std::env::var_os("TASKY_REQUIRE_NGINX").is_none(),
                "TASKY_REQUIRE_NGINX is set but nginx is not installed"
            );
            eprintln!(
                "skipped: nginx is not installed (apt-get install nginx); .ci/run installs it"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let prefix = dir.path().display();
        let servers: String = upstreams
            .iter()
            .map(|upstream| format!("    server {upstream};\n"))
            .collect();
        let config = format!(
            "daemon off;\nmaster_process off;\nerror_log {prefix}/error.log;\npid {prefix}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_max_body_size 4m;\n\
               client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
               fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
               upstream tasky {{\n{servers}  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://tasky;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Real-IP $remote_addr;\n    }}\n  }}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let address = format!("127.0.0.1:{port}");
        let nginx = Self {
            child,
            address,
            dir,
        };
        nginx.await_listening();
        Some(nginx)
    }

    fn await_listening(&self) {
        let start = Instant::now();
        while TcpStream::connect(&self.address).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen: {}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What nginx has logged: its view of the upstreams.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
