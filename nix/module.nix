# The flake's NixOS module (nixosModules.default): compiles a topology for this machine's host
# and declares what bkc writes for that host, through NixOS options.
#
# The compiled module is the same bkc.nix that `bkc build --emit nixos` writes, imported here
# as a function so that its settings apply under `enable`. By default it is built during
# evaluation (import from derivation); `generated` takes a bkc.nix built beforehand instead.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.bkc;
  compiled = pkgs.runCommand "bkc-nixos-${cfg.host}" { nativeBuildInputs = [ cfg.package ]; } ''
    bkc build --emit nixos --host ${lib.escapeShellArg cfg.host} -o "$out" ${cfg.topology}
  '';
  generated = (import cfg.generated { inherit config lib pkgs; }).config;
in
{
  options.services.bkc = {
    enable = lib.mkEnableOption "the bkc backup jobs of this host";
    topology = lib.mkOption {
      type = lib.types.path;
      example = lib.literalExpression "./backup.kdl";
      description = "The KDL topology of the whole fleet.";
    };
    host = lib.mkOption {
      type = lib.types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "Which host of the topology this machine is.";
    };
    generated = lib.mkOption {
      type = lib.types.path;
      default = "${compiled}/${cfg.host}/bkc.nix";
      defaultText = lib.literalExpression "bkc build --emit nixos --host <host> <topology>";
      description = ''
        The module bkc compiled for this host. By default it is built from `topology` while the
        system is evaluated (import from derivation); set it to a `bkc.nix` written by
        `bkc build --emit nixos` where import from derivation is not allowed.
      '';
    };

    # The same options as in the compiled module, which reads them.
    package = lib.mkOption {
      type = lib.types.package;
      description = "The bkc package, whose `bkc-run` runs the jobs.";
    };
    runner = lib.mkOption {
      type = lib.types.str;
      default = "${cfg.package}/bin/bkc-run";
      defaultText = lib.literalExpression ''"''${config.services.bkc.package}/bin/bkc-run"'';
      description = "The runner every job's `ExecStart=` runs, in place of the topology's `runner`.";
    };
    mkdir = lib.mkOption {
      type = lib.types.str;
      default = "${pkgs.coreutils}/bin/mkdir";
      defaultText = lib.literalExpression ''"''${pkgs.coreutils}/bin/mkdir"'';
      description = "The mkdir that creates each job's writable paths before its sandbox is set up.";
    };
    path = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ pkgs.rsync pkgs.openssh ];
      defaultText = lib.literalExpression "[ pkgs.rsync pkgs.openssh ]";
      description = "Packages on every job's PATH: the runner calls rsync and ssh; add what hooks run.";
    };
  };

  # The attribute names are spelt out: a module's top-level names cannot depend on `config`.
  config = lib.mkIf cfg.enable {
    systemd.services = generated.systemd.services;
    systemd.timers = generated.systemd.timers;
    systemd.paths = generated.systemd.paths;
    environment.etc = generated.environment.etc;
    services.openssh.authorizedKeysFiles = generated.services.openssh.authorizedKeysFiles;
    system.activationScripts = generated.system.activationScripts;
  };
}
