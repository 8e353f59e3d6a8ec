// A person opens the web chat demo page in headless Chromium, receives the privacy policy
// link, clicks AGREE & PROCEED and sees the acknowledgement; then reloads the page and
// finds the same conversation, not a new one.
// Usage: ASSENT_TEST_CHROMIUM=/usr/bin/chromium node consent.mjs http://127.0.0.1:PORT
// Prints {"visitor": ..., "transcript": [...]} on success; exits non-zero on failure.
import { chromium } from "playwright-core";

const base = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.ASSENT_TEST_CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(base + "/");

  await page.locator('.assent-business a[href="https://example.com/privacy"]').waitFor();
  const agree = page.getByRole("button", { name: "AGREE & PROCEED" });
  await agree.click();
  await page.locator(".assent-visitor", { hasText: "AGREE & PROCEED" }).waitFor();
  if (!(await agree.isDisabled())) throw new Error("the answered question's buttons stay enabled");
  await page.locator(".assent-business", { hasText: "Thank you" }).waitFor();
  const transcript = await page.locator(".assent-message").allInnerTexts();

  const token = await page.evaluate(() =>
    Object.entries(localStorage).find(([key]) => key.startsWith("assent.session."))[1]);

  // Back later: the same session, the history shown again, no second conversation.
  await page.reload();
  await page.locator(".assent-business", { hasText: "Thank you" }).waitFor();
  await page.waitForTimeout(500);
  const again = await page.locator(".assent-business").allInnerTexts();
  const business = transcript.length - 1; // all but the visitor's own answer
  if (again.length !== business) {
    throw new Error(`after a reload: ${again.length} messages, expected ${business}: ${JSON.stringify(again)}`);
  }
  console.log(JSON.stringify({ visitor: token.split(".")[0], transcript }));
} finally {
  await browser.close();
}
