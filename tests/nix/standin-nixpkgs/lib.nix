# A stand-in for the part of nixpkgs' lib that bkc's Nix files use, so that tests can evaluate
# them offline. Options and types keep what the tests check: defaults, and type checks.
let
  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    licenses.asl20 = { spdxId = "Apache-2.0"; };

    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Whether to enable ${name}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkDefault = content: { _type = "override"; priority = 1000; inherit content; };

    types = {
      bool = { name = "bool"; check = builtins.isBool; };
      str = { name = "str"; check = builtins.isString; };
      path = {
        name = "path";
        check = x: builtins.isPath x || (builtins.isString x && builtins.substring 0 1 x == "/");
      };
      package = {
        name = "package";
        check = x: builtins.isAttrs x && (x.type or null) == "derivation";
      };
      listOf = t: {
        name = "listOf ${t.name}";
        check = x: builtins.isList x && builtins.all t.check x;
      };
    };
  };
in
lib
