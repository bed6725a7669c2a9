// Tandem's pages: charts from server-built Chart.js configs, sliders, layer lists, the model-type switch,
// upload progress and column suggestions. Everything is wired on page load and on each htmx swap.
(function () {
  "use strict";

  // Elements under `root` that match `selector`, `root` included (htmx may swap in the element itself).
  function all(root, selector) {
    const found = Array.from(root.querySelectorAll(selector));
    if (root.matches && root.matches(selector)) found.unshift(root);
    return found;
  }

  // ------------------------------------------------------------------------------------------- charts

  function formatPercent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }

  function formatNumber(value) {
    return value === null || value === undefined ? "—" : Number(value).toFixed(3);
  }

  // Decimals that keep neighbouring ticks apart (ticks 0.0025 apart on a percent axis need one: 33.8%, 34.0%).
  function tickDecimals(ticks, scale) {
    const step = ticks.length > 1 ? Math.abs(ticks[1].value - ticks[0].value) * scale : 0;
    return step > 0 ? Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
  }

  function tickFormat(percent) {
    const scale = percent ? 100 : 1;
    return (value, index, ticks) => (value * scale).toFixed(tickDecimals(ticks, scale)) + (percent ? "%" : "");
  }

  function axisTitle(text) {
    return { display: !!text, text: text || "" };
  }

  // A chart config from the server: {type, data, axes: {percent, secondary, x_title, y_title, y1_title, offset,
  // numeric_x, points}}. With `points` (a study's charts), the tooltip is the nearest point's own label and a
  // click on a point with a `url` opens it.
  function chartOptions(config) {
    const axes = config.axes || {};
    const y = { ticks: { callback: tickFormat(axes.percent) }, grid: { color: "#eef1f6" }, title: axisTitle(axes.y_title) };
    const x = {
      title: axisTitle(axes.x_title),
      grid: { display: false },
      ticks: { maxRotation: 0, autoSkipPadding: 12 },
      offset: !!axes.offset || config.type === "bar",
    };
    if (axes.numeric_x) {
      // A histogram's bars sit at their bins' centres on a numeric axis: round tick values, bars touching.
      x.type = "linear";
      x.offset = false;
      x.ticks.callback = tickFormat(false);
    }
    const scales = { x: x, y: y };
    if (axes.secondary) {
      scales.y1 = {
        position: "right",
        grid: { drawOnChartArea: false },
        ticks: { callback: tickFormat(false) },
        title: axisTitle(axes.y1_title),
      };
    }
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: axes.points ? { mode: "nearest", intersect: true } : { mode: "index", intersect: false },
      onClick: (event, elements, chart) => {
        const hit = elements[0];
        const point = hit && chart.data.datasets[hit.datasetIndex].data[hit.index];
        if (point && point.url) window.location.href = point.url;
      },
      scales: scales,
      plugins: {
        legend: {
          position: "bottom",
          // A band's lower edge has no legend entry of its own: its upper edge is labelled "mean ± std".
          labels: { boxWidth: 12, boxHeight: 12, filter: (item, data) => !data.datasets[item.datasetIndex].hideInLegend },
        },
        tooltip: {
          callbacks: {
            label: (ctx) => {
              if (ctx.raw && ctx.raw.label) return ctx.raw.label + " → " + formatNumber(ctx.raw.x) + ", " + formatNumber(ctx.raw.y);
              const onPercentAxis = axes.percent && ctx.dataset.yAxisID !== "y1";
              const v = ctx.parsed.y;
              if (config.type === "bar") return ctx.dataset.label + ": " + v;  // a count
              return ctx.dataset.label + ": " + (onPercentAxis ? formatPercent(v) : formatNumber(v));
            },
          },
        },
      },
    };
  }

  function renderCharts(root) {
    if (typeof Chart === "undefined") return;
    all(root, "canvas[data-chart]").forEach((canvas) => {
      if (canvas.dataset.rendered) return;
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const config = JSON.parse(source.textContent);
      new Chart(canvas, { type: config.type, data: config.data, options: chartOptions(config) });
      canvas.dataset.rendered = "1";
    });
  }

  // --------------------------------------------------------------------------------- model config form

  function showForType(form) {
    const checked = form.querySelector('input[name="model-type"]:checked');
    if (!checked) return;
    form.querySelectorAll("[data-types]").forEach((el) => {
      el.hidden = !el.dataset.types.split(" ").includes(checked.value);
    });
  }

  function wireSliders(root) {
    all(root, ".slider input[type=range]").forEach((input) => {
      const output = input.parentElement.querySelector("output");
      const show = () => { output.textContent = Number(input.value).toFixed(1); };
      input.addEventListener("input", show);
      show();
    });
  }

  function wireLayerLists(root) {
    all(root, "[data-layer-list]").forEach((list) => {
      const rows = list.querySelector(".layer-rows");
      list.querySelector("[data-add-row]").addEventListener("click", () => {
        const last = rows.querySelector("input:last-of-type");
        const li = document.createElement("li");
        li.className = "layer-row";
        li.innerHTML = '<input type="number" min="1" step="1"><button type="button" class="icon-btn" data-remove-row title="Remove layer">×</button>';
        const input = li.querySelector("input");
        input.name = list.dataset.name;
        input.value = last && last.value ? Math.max(1, Math.round(last.value / 2)) : 32;
        rows.appendChild(li);
        input.focus();
      });
      rows.addEventListener("click", (event) => {
        if (event.target.matches("[data-remove-row]")) event.target.closest("li").remove();
      });
    });
  }

  // ------------------------------------------------------------------------------- feature config form

  function wireFeatureTable(root) {
    all(root, "[data-feature-table]").forEach((table) => {
      const embedded = table.dataset.embedded.split(" ");
      table.querySelectorAll("tbody tr").forEach((row) => {
        const side = row.querySelector("select[name^=side_]");
        const transform = row.querySelector("select[name^=transform_]");
        const dim = row.querySelector("input[name^=dim_]");
        const update = () => {
          row.classList.toggle("unused", !side.value);
          // Read-only rather than disabled, so the value is kept (and sent) when the transform changes back.
          dim.readOnly = !embedded.includes(transform.value);
          dim.classList.toggle("inactive", dim.readOnly);
        };
        side.addEventListener("change", update);
        transform.addEventListener("change", update);
        update();
      });
    });
  }

  // ------------------------------------------------------------------------------------------- upload

  // Column names from the first line of a CSV file, for the column pickers' suggestions.
  async function csvHeader(file) {
    if (!/\.(csv|tsv|txt)$/i.test(file.name)) return [];
    const text = await file.slice(0, 65536).text();
    const line = text.split(/\r?\n/)[0] || "";
    const delimiter = [",", ";", "\t", "|"].reduce((best, d) => (line.split(d).length > line.split(best).length ? d : best), ",");
    return line.split(delimiter).map((c) => c.trim().replace(/^"(.*)"$/, "$1")).filter(Boolean);
  }

  const GUESSES = {
    buyer_id_column: /^(buyer|customer|user|household|client|account)(_?id|_key)?$/i,
    product_id_column: /^(product|item|movie|sku|article)(_?id|_key)?$/i,
    timestamp_column: /^(ts|time|timestamp|date|datetime|created_at|transaction_timestamp|day)$/i,
  };

  function wireUpload(root) {
    const form = all(root, "#upload-form")[0];
    if (!form) return;
    form.querySelectorAll("input[type=file][data-role]").forEach((input) => {
      input.addEventListener("change", async () => {
        const role = input.dataset.role;
        const columns = input.files.length ? await csvHeader(input.files[0]) : [];
        const list = document.getElementById(role + "-columns");
        if (list) list.innerHTML = columns.map((c) => `<option value="${c.replace(/"/g, "&quot;")}">`).join("");
        if (role === "transactions") {
          Object.entries(GUESSES).forEach(([name, pattern]) => {
            const field = form.querySelector(`[name=${name}]`);
            const guess = columns.find((c) => pattern.test(c));
            if (field && !field.value && guess) field.value = guess;
          });
          const nameField = form.querySelector("[name=name]");
          if (nameField && !nameField.value && input.files.length) nameField.value = input.files[0].name.replace(/\.[^.]+$/, "");
        }
        if (role !== "transactions" && columns.length) {
          const key = form.querySelector(`[name=${role}_key]`);
          const tx = form.querySelector(`[name=${role === "buyers" ? "buyer" : "product"}_id_column]`);
          if (key && !key.value) key.value = columns.includes(tx && tx.value) ? tx.value : columns[0];
        }
      });
    });
    const box = form.querySelector(".upload-progress");
    form.addEventListener("htmx:xhr:progress", (event) => {
      if (!event.detail.lengthComputable) return;
      const share = Math.round((event.detail.loaded / event.detail.total) * 100);
      box.hidden = false;
      box.querySelector("progress").value = share;
      box.querySelector(".label").textContent = share < 100 ? `Uploading… ${share}%` : "Reading the file…";
    });
  }

  // -------------------------------------------------------------------------------------------- misc

  // The experiment form shows the split fields that the chosen split reads: a cutoff only for a time split, a test
  // fraction unless a cutoff decides the test rows (leave-last-out tests each buyer's last row). A hidden cutoff
  // is disabled, so that it is not sent (the engine refuses a cutoff for other splits); a hidden test fraction is
  // still sent, and unused.
  function wireSplit(root) {
    all(root, "#experiment-form").forEach((form) => {
      const kind = form.querySelector("[name=split_kind]");
      const cutoff = form.querySelector("[name=split_cutoff]");
      const fraction = form.querySelector("[name=test_fraction]");
      if (!kind || !cutoff || !fraction) return;
      const show = (input, shown) => { input.closest(".field").hidden = !shown; };
      const update = () => {
        show(cutoff, kind.value === "time");
        cutoff.disabled = kind.value !== "time";
        show(fraction, kind.value === "random" || (kind.value === "time" && !cutoff.value.trim()));
      };
      kind.addEventListener("change", update);
      cutoff.addEventListener("input", update);
      update();
    });
  }

  // A button[data-copy=ID] copies the text of element ID and says so.
  function wireCopy(root) {
    all(root, "button[data-copy]").forEach((button) => {
      const label = button.textContent;
      button.addEventListener("click", async () => {
        const text = document.getElementById(button.dataset.copy).textContent;
        try {
          await navigator.clipboard.writeText(text);
          button.textContent = "Copied";
        } catch (error) {
          button.textContent = "Copy failed: select the text instead";
        }
        setTimeout(() => { button.textContent = label; }, 2000);
      });
    });
  }

  // A form[data-confirm] asks before it is sent (deleting cannot be undone).
  function wireConfirm(root) {
    all(root, "form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function wireAutosubmit(root) {
    all(root, "select[data-autosubmit]").forEach((select) => {
      select.addEventListener("change", () => select.form.submit());
    });
  }

  function wire(root) {
    renderCharts(root);
    wireSliders(root);
    wireLayerLists(root);
    wireFeatureTable(root);
    wireUpload(root);
    wireAutosubmit(root);
    wireCopy(root);
    wireSplit(root);
    wireConfirm(root);
    all(root, "form[data-model-form]").forEach((form) => {
      form.addEventListener("change", (event) => {
        if (event.target.name === "model-type") showForType(form);
      });
      showForType(form);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire(document);
    // htmx:load fires for every element htmx swaps in; the first page is wired above.
    document.body.addEventListener("htmx:load", (event) => {
      if (event.detail.elt !== document.body) wire(event.detail.elt);
    });
    // Charts need their canvas laid out: draw any still undrawn once a swapped panel has settled.
    document.body.addEventListener("htmx:afterSettle", (event) => renderCharts(event.detail.elt));
  });
})();
