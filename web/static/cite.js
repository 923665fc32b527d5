// Optional enhancement: a "Copy" button beside each citation. Without JavaScript the citation is still
// shown (and selected by one click) when "Cite" is opened; the button stays hidden.
"use strict";

async function copyText(text, source) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (err) {
    // No clipboard API (e.g. plain http on another host): select the text and use the legacy command.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return document.execCommand("copy");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = button.parentElement.querySelector(".citation");
      const ok = await copyText(button.dataset.citation, source);
      button.textContent = ok ? "Copied" : "Select and copy";
      button.classList.toggle("done", ok);
      setTimeout(() => {
        button.textContent = "Copy";
        button.classList.remove("done");
      }, 2000);
    });
  }
});
