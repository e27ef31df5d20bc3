// The dashboard in a real browser (Debian's chromium driven by playwright-core), as a person
// uses it: a wrong token is refused; sign in with the keyboard; the project's builds, where a
// build skopeo pushes turns from building to saved; open it, copy its pull command, extend it, mint a pull token
// (shown once), delete it, and see it gone; another project's builds are never shown; the
// read-only pages read without JavaScript; signing out ends the session on the server.
// Every page gets a screenshot, and every control a label.
//
// Run by registry/tests/ui.rs, which starts the registry and passes (environment):
//   UI_URL, PROJECT, PROJECT_NAME, PROJECT_TOKEN, OTHER_PROJECT, OTHER_PROJECT_NAME,
//   OTHER_BUILD, STABLE_BUILD (a saved build of PROJECT with an SBOM), PUSH (JSON: the skopeo command line that saves a build of PROJECT, whose id
//   is BUILD), BUILD, SHOTS (where screenshots go), PLAYWRIGHT_CORE (the module's path).
"use strict";

const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.UI_URL;
const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} is not set`);
  return v;
};

/// Every form control has a label, every button and link a name, the page a language.
async function accessible(page, what) {
  const problems = await page.evaluate(() => {
    const out = [];
    if (document.documentElement.lang !== "en") out.push("no lang");
    for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
      if (!el.labels || el.labels.length === 0) out.push(`unlabelled ${el.outerHTML}`);
    }
    for (const el of document.querySelectorAll("button, a")) {
      const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
      if (!name) out.push(`nameless ${el.outerHTML}`);
    }
    if (!document.querySelector("main h1")) out.push("no heading");
    return out;
  });
  assert.deepEqual(problems, [], `${what}: ${problems.join("; ")}`);
}

async function main() {
  const shots = env("SHOTS");
  const project = env("PROJECT");
  const build = env("BUILD");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    const page = await context.newPage();
    const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

    // Not signed in: every page sends to the sign-in form.
    await page.goto(`${base}/ui/projects/${project}`);
    assert.equal(new URL(page.url()).pathname, "/ui/login");
    await accessible(page, "sign-in");
    await shot("01-sign-in");

    // A wrong token is refused, saying so, and opens nothing.
    await page.getByLabel("Token").fill(env("PROJECT_TOKEN") + "x");
    const refused = page.waitForResponse((r) => r.url().endsWith("/ui/login") && r.request().method() === "POST");
    await page.getByRole("button", { name: "Sign in" }).click();
    assert.equal((await refused).status(), 401);
    await page.waitForLoadState();
    assert.match(await page.getByRole("alert").innerText(), /invalid credentials/);
    await shot("02-sign-in-refused");

    // Signed in with the keyboard alone: the token field has focus, Enter submits.
    assert.equal(await page.evaluate(() => document.activeElement.id), "token");
    await page.keyboard.type(env("PROJECT_TOKEN"));
    await Promise.all([page.waitForURL("**/ui/projects"), page.keyboard.press("Enter")]);
    await accessible(page, "projects");
    const projects = await page.locator("main").innerText();
    assert.ok(projects.includes(env("PROJECT_NAME")), projects);
    assert.ok(!projects.includes(env("OTHER_PROJECT_NAME")), "another project is listed");
    await shot("03-projects");

    // The project's builds: the new one still building, then saved once skopeo pushed it.
    await page.getByRole("link", { name: env("PROJECT_NAME") }).click();
    await page.waitForURL(`**/ui/projects/${project}`);
    const row = page.getByRole("row").filter({ hasText: build });
    assert.match(await row.innerText(), /building/);
    const [push, ...pushArgs] = JSON.parse(env("PUSH"));
    execFileSync(push, pushArgs, { stdio: "inherit" });
    await page.reload();
    assert.match(await row.innerText(), /saved/);
    await accessible(page, "builds");
    await shot("04-builds");
    // Filtered by state and by save tag.
    await page.getByLabel("State").selectOption("failed");
    await Promise.all([page.waitForURL("**state=failed**"), page.getByRole("button", { name: "Filter" }).click()]);
    assert.equal(await page.getByRole("row").filter({ hasText: build }).count(), 0);
    await page.getByLabel("State").selectOption("saved");
    await page.getByLabel("Save tag").fill("latest");
    await Promise.all([page.waitForURL("**tag=latest**"), page.getByRole("button", { name: "Filter" }).click()]);
    assert.equal(await page.getByRole("row").filter({ hasText: build }).count(), 1);
    await shot("05-builds-filtered");

    // The build: its image, layers, and the commands to use it.
    await page.getByRole("link", { name: build }).click();
    await page.waitForURL(`**/ui/builds/${build}`);
    const details = await page.locator("main").innerText();
    assert.match(details, /Layers of linux\/amd64/);
    // The same image was saved by another build first: its layer is marked shared.
    assert.match(details, /shared with other builds/);
    await accessible(page, "build");
    await shot("06-build");
    await page.getByRole("button", { name: "Copy: Pull into Docker" }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, `depot pull --project ${project} ${build}`);

    // Extended, after asking.
    const before = await page.locator("dl.facts").innerText();
    await page.getByRole("link", { name: "Extend…" }).click();
    await accessible(page, "extend");
    await shot("07-extend");
    await page.getByLabel("Keep it longer by").selectOption({ label: "30 days" });
    await Promise.all([page.waitForURL(`**/ui/builds/${build}`), page.getByRole("button", { name: "Extend" }).click()]);
    const after = await page.locator("dl.facts").innerText();
    assert.notEqual(after, before);
    assert.match(after, /in 3[67] d/);

    // A pull token, shown once.
    await page.getByRole("link", { name: "Mint a pull token…" }).click();
    await page.getByRole("button", { name: "Mint the token" }).click();
    await page.waitForLoadState();
    const token = await page.locator("#minted-token").innerText();
    assert.match(token, /^eyJ/);
    await accessible(page, "pull token");
    await shot("08-pull-token");
    await page.goto(`${base}/ui/builds/${build}`);
    assert.ok(!(await page.content()).includes(token), "the token is shown again");

    // Deleted, after asking: gone from the list, and its page is a 404.
    await page.getByRole("link", { name: "Delete…" }).click();
    await shot("09-delete");
    await Promise.all([page.waitForURL(`**/ui/projects/${project}`), page.getByRole("button", { name: "Delete the build" }).click()]);
    assert.equal(await page.getByRole("row").filter({ hasText: build }).count(), 0);
    const gone = await page.goto(`${base}/ui/builds/${build}`);
    assert.equal(gone.status(), 404);

    // The other build of the project: its SBOM is listed by artifact type.
    await page.goto(`${base}/ui/builds/${env("STABLE_BUILD")}`);
    const referrers = page.getByRole("table", { name: /What points at it/ });
    assert.match(await referrers.innerText(), /application\/spdx\+json/);
    await shot("10-build-with-sbom");

    // Another project, and its build: never shown to this sign-in.
    for (const path of [`/ui/projects/${env("OTHER_PROJECT")}`, `/ui/builds/${env("OTHER_BUILD")}`]) {
      const r = await page.goto(base + path);
      assert.equal(r.status(), 404, path);
      assert.ok(!(await page.content()).includes(env("OTHER_PROJECT_NAME")));
    }
    await shot("11-not-found");

    // Without JavaScript the read-only pages read the same (the copy buttons stay hidden).
    const plain = await browser.newContext({ javaScriptEnabled: false });
    const noScript = await plain.newPage();
    await noScript.goto(`${base}/ui/login`);
    await noScript.getByLabel("Token").fill(env("PROJECT_TOKEN"));
    await Promise.all([noScript.waitForURL("**/ui/projects"), noScript.getByRole("button", { name: "Sign in" }).click()]);
    await noScript.goto(`${base}/ui/projects/${project}`);
    assert.ok((await noScript.locator("main").innerText()).includes("Builds"));
    assert.equal(await noScript.locator("svg[role=img]").count(), 3, "the usage charts");
    await plain.close();

    // Signing out ends the session on the server: the old cookie opens nothing.
    const cookies = await context.cookies();
    await Promise.all([page.waitForURL("**/ui/login"), page.getByRole("button", { name: "Sign out" }).click()]);
    const again = await browser.newContext();
    await again.addCookies(cookies);
    const replay = await again.newPage();
    await replay.goto(`${base}/ui/projects`);
    assert.equal(new URL(replay.url()).pathname, "/ui/login");
    await again.close();
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log("dashboard: every step passed"),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
