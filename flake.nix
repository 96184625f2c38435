{
  description = "bkc: compile one KDL backup topology into per-host systemd units and job specs";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # The runner takes flock(2) locks and runs under systemd: Linux only, like NixOS.
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      # The root package is bkc; its version is the workspace's, which the runner shares.
      manifest = lib.importTOML ./Cargo.toml;
      cargo = manifest.package // { inherit (manifest.workspace.package) version; };
    in
    {
      packages = forAllSystems (system: pkgs: {
        default = pkgs.rustPlatform.buildRustPackage {
          pname = cargo.name;
          inherit (cargo) version;
          src = self;
          cargoLock.lockFile = ./Cargo.lock;
          # Every workspace member is a default member, so this builds and installs bkc-run
          # (crates/runner) beside bkc.
          # The test suite checks bkc against systemd, rsync, sshd and Nix itself, which the
          # build sandbox does not have; .ci/run runs it on a machine that does.
          doCheck = false;
          meta = {
            inherit (cargo) description;
            license = lib.licenses.asl20;
            mainProgram = "bkc";
          };
        };
      });

      apps = forAllSystems (system: pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/bkc";
        };
      });

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt pkgs.rsync pkgs.openssh ];
        };
      });

      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.bkc.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
    };
}
