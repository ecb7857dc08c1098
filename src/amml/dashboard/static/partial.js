// Partial page updates in ~40 lines (htmx is not available offline here, so this is ours):
//  <form data-target="#id">   submit or change -> GET the form's URL, swap #id's content
//  <a data-target="#id">      click -> GET the link, swap #id's content
//  <div data-get="URL" [data-every="2"]>  load URL into the element (again every N s)
//  <div data-figure='{...}'>  a Plotly figure (JSON), drawn after every swap
(function () {
  "use strict";
  function draw(root) {
    root.querySelectorAll("[data-figure]").forEach(function (el) {
      var figure = JSON.parse(el.getAttribute("data-figure"));
      Plotly.react(el, figure.data, figure.layout, {responsive: true, displaylogo: false});
    });
  }
  function load(target, url, push) {
    return fetch(url, {headers: {"X-Partial": "1"}, credentials: "same-origin"})
      .then(function (answer) {
        if (answer.status === 401) { window.location.href = document.body.dataset.login; return; }
        return answer.text().then(function (html) {
          target.innerHTML = html;
          draw(target); bind(target);
          if (push) { window.history.pushState({}, "", url); }
        });
      });
  }
  function bind(root) {
    root.querySelectorAll("form[data-target]").forEach(function (form) {
      if (form.dataset.bound) { return; } form.dataset.bound = "1";
      var go = function (event) {
        if (event) { event.preventDefault(); }
        var query = new URLSearchParams(new FormData(form)).toString();
        load(document.querySelector(form.dataset.target), form.action.split("?")[0] + "?" + query, true);
      };
      form.addEventListener("submit", go);
      form.querySelectorAll("select").forEach(function (s) { s.addEventListener("change", function () { go(); }); });
    });
    root.querySelectorAll("a[data-target]").forEach(function (link) {
      if (link.dataset.bound) { return; } link.dataset.bound = "1";
      link.addEventListener("click", function (event) {
        event.preventDefault(); load(document.querySelector(link.dataset.target), link.href, true);
      });
    });
    root.querySelectorAll("[data-get]").forEach(function (el) {
      if (el.dataset.bound) { return; } el.dataset.bound = "1";
      load(el, el.dataset.get, false);
      var every = parseFloat(el.dataset.every || "0");
      if (every > 0) { window.setInterval(function () { load(el, el.dataset.get, false); }, every * 1000); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); bind(document); });
  window.addEventListener("popstate", function () { window.location.reload(); });
})();
