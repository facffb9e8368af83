/**
 * The service generators without the CLI: systemd's quoting of ExecStart words, and the fleet
 * node's unit built from the node's own command line (`pythond join … --install-service`).
 */
import { describe, expect, test } from "bun:test";
import { nodeSpec } from "../../src/service/install.ts";
import { launchdLabel, systemdQuote, systemdUnit } from "../../src/service/unit.ts";

describe("service units", () => {
  test("systemdQuote: plain words as they are; specifiers, expansions, spaces and quotes escaped", () => {
    expect(systemdQuote("/usr/local/bin/pythond")).toBe("/usr/local/bin/pythond");
    expect(systemdQuote("0.0.0.0:7399")).toBe("0.0.0.0:7399");
    expect(systemdQuote("50%")).toBe("50%%");
    expect(systemdQuote("$HOME/x")).toBe('"$$HOME/x"');
    expect(systemdQuote('a b"c\\d')).toBe('"a b\\"c\\\\d"');
  });

  test("a fleet node's unit runs `join` with the node's arguments, less --install-service", () => {
    const spec = nodeSpec({ system: false, joinArgs: ["srv:7399", "--install-service", "--name", "gpu 1"] });
    expect(spec.name).toBe("pythond-node");
    expect(spec.argv.slice(-4)).toEqual(["join", "srv:7399", "--name", "gpu 1"]);
    const unit = systemdUnit(spec);
    expect(unit).toMatch(/^ExecStart=.* join srv:7399 --name "gpu 1"$/m);
    expect(unit).toContain("KillMode=process\n");
    expect(unit).toContain("(pyctl uninstall-service --node removes it)");
    expect(launchdLabel(spec)).toBe("dev.pythond.node");
    const sys = systemdUnit(nodeSpec({ system: true, runAs: "svc", joinArgs: ["srv:7399"] }));
    expect(sys).toContain("RuntimeDirectory=pythond-node\n");
    expect(sys).toContain("Environment=PYTHOND_SOCK=/run/pythond-node/pythond.sock\n");
    expect(sys).toContain("User=svc\n");
  });
});

describe("pythond join --install-service arguments", () => {
  test("our flags and the join token stay out of the node's command line", async () => {
    const { nodeServiceArgs } = await import("../../src/cli/join-service.ts");
    expect(nodeServiceArgs(["wss://hub:7399", "--token", "T0K", "--fingerprint", "ab:cd", "--install-service", "--system", "--run-as", "svc", "--label", "gpu=1"])).toEqual({
      joinArgs: ["wss://hub:7399", "--fingerprint", "ab:cd", "--label", "gpu=1"],
      system: true,
      print: false,
      runAs: "svc",
      droppedToken: true,
    });
    expect(nodeServiceArgs(["wss://hub:7399", "--token=T0K", "--install-service", "--print"]).joinArgs).toEqual(["wss://hub:7399"]);
    expect(() => nodeServiceArgs(["wss://hub:7399", "--install-service", "--run-as", "svc"])).toThrow("--run-as applies to --system services");
  });
});
