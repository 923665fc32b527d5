// Optional enhancements; the pages work without them. A "Copy" button beside each citation (without
// JavaScript the citation is still shown, and selected by one click, when "Cite" is opened; the buttons stay
// hidden), and the "/" key to jump to the search box from anywhere on the page.
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

function typingIn(element) {
  return element instanceof HTMLInputElement || element instanceof HTMLTextAreaElement ||
    element instanceof HTMLSelectElement || (element instanceof HTMLElement && element.isContentEditable);
}

document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typingIn(event.target)) {
    return;
  }
  const box = document.getElementById("q");
  if (box) {
    event.preventDefault();  // the "/" is a command here, not a character for the box
    box.focus();
    box.select();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = button.closest(".cite-format").querySelector(".citation");
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
