import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addDec,
  cmpDec,
  divFloorToIncrement,
  floorToIncrement,
  incrementDecimals,
  isDecimal,
  isMultipleOf,
  mulDec,
  normalize,
  percentOf,
  subDec,
  toFixedDec,
  groupThousands,
} from "../js/decimal.js";

test("isDecimal", () => {
  assert.ok(isDecimal("0"));
  assert.ok(isDecimal("30000.10"));
  for (const bad of ["", ".5", "5.", "-1", "1e5", "1,5", " 1", 1.5]) assert.ok(!isDecimal(bad), String(bad));
});

test("normalize and compare", () => {
  assert.equal(normalize("0030000.1000"), "30000.1");
  assert.equal(normalize("0.000"), "0");
  assert.equal(cmpDec("10.0", "9.99"), 1);
  assert.equal(cmpDec("0.1", "0.10"), 0);
  assert.equal(cmpDec("99", "100"), -1);
});

test("increments", () => {
  assert.equal(incrementDecimals("0.01"), 2);
  assert.equal(incrementDecimals("0.00100"), 3);
  assert.equal(incrementDecimals("5"), 0);
  assert.ok(isMultipleOf("30000.10", "0.01"));
  assert.ok(isMultipleOf("30000.1000", "0.01"));
  assert.ok(!isMultipleOf("30000.105", "0.01"));
  assert.ok(isMultipleOf("0.00015", "0.00005"));
  assert.ok(!isMultipleOf("0.00012", "0.00005"));
  assert.ok(isMultipleOf("25", "5"));
});

test("exact arithmetic where floats fail", () => {
  assert.equal(addDec("0.1", "0.2"), "0.3");
  assert.equal(subDec("0.3", "0.1"), "0.2");
  assert.equal(subDec("0.1", "0.3"), "-0.2");
  assert.equal(mulDec("30000.10", "0.00015"), "4.500015");
  assert.equal(mulDec("123456789.12345678", "1000000"), "123456789123456.78");
});

test("flooring to increments", () => {
  assert.equal(normalize(floorToIncrement("1.23456", "0.001")), "1.234");
  assert.equal(normalize(divFloorToIncrement("1000", "30000.10", "0.00001")), "0.03333");
  assert.equal(divFloorToIncrement("1", "0", "0.1"), null);
  assert.equal(normalize(percentOf("1.23456789", 50, "0.00001")), "0.61728");
  assert.equal(normalize(percentOf("10", 100, "0.001")), "10");
});

test("display formatting", () => {
  assert.equal(toFixedDec("30000.1", 2), "30000.10");
  assert.equal(toFixedDec("0.123456789", 8), "0.12345678");
  assert.equal(toFixedDec("5", 0), "5");
  assert.equal(groupThousands("1234567.50"), "1,234,567.50");
  assert.equal(groupThousands("-1000"), "-1,000");
});
