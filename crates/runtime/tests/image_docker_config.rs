//! Credentials from the user's Docker config (`$DOCKER_CONFIG/config.json`). The only test of
//! this binary, so setting the environment variable races with nothing.

mod image_support;

use image_support::{Registry, busybox_layout, dockerconfigjson, push, skip_reason};
use localfargate_runtime::image::{ImageStore, PullPolicy, RegistryConfig};

#[test]
fn image_docker_config_credentials_are_used_after_secrets() {
    if let Some(reason) = skip_reason(&["docker-registry", "skopeo", "htpasswd"]) {
        eprintln!("skipped: {reason}");
        return;
    }
    let reg = Registry::start(Some(("dc", "from-config")));
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let digest = busybox_layout(&layout, "t", "config");
    let image = format!("{}/busybox:t", reg.host);
    push(&layout, "t", &image, Some("dc:from-config"));
    let config_dir = tmp.path().join("docker");
    std::fs::create_dir_all(&config_dir).expect("mkdir");
    std::fs::write(
        config_dir.join("config.json"),
        dockerconfigjson(&reg.host, "dc", "from-config"),
    )
    .expect("write config.json");
    // SAFETY: no other thread exists yet in this test binary's only test.
    unsafe { std::env::set_var("DOCKER_CONFIG", &config_dir) };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store =
            ImageStore::open(&tmp.path().join("store"), RegistryConfig::default()).expect("open");
        // A wrong secret first: the Docker config still gets its turn.
        let wrong = dockerconfigjson(&reg.host, "dc", "wrong");
        let out = store
            .ensure(&image, PullPolicy::Always, &[wrong])
            .await
            .expect("pull with the docker config's credentials");
        assert_eq!(out.image.digest, digest);
    });
}
